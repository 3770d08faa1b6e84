"""Intake: verify an envelope, store it, fix the sent instant, and sign the receipt.

The steps, in order (the envelope's own checks are numbered in ``gateway.envelope``):

1. An identical resubmission (same sender, same envelope bytes) returns the receipt already given (200),
   storing nothing.
2. The sender's register entry (signature policy, certificates) is read.
3. ``gateway.envelope.inspect_envelope`` runs every content check on the bytes and any multipart parts.
4. Every recipient is a registered, active agency (a ``To`` may name it by an alias: step 3 resolved it). An
   agency of the upstream axis (delivery mode ``upstream``, imported by the register sync) gets a delivery of
   mode ``upstream``: the delivery worker forwards the document there once, the upstream fanning out
   (:mod:`gateway.delivery.forward`); when no upstream is configured, or the document's large attachments
   travel as multipart parts (the VXP protocol cannot carry them), it is refused rather than accepted and
   left undelivered (recipient-upstream-not-forwarded).
5. A new document (``BussinessDocType`` 0) under the same sender and DocumentId with a different envelope:
   409 (Điều 12.8, a sent document never changes). A recall, update or replacement (1, 2, 3) is a new message
   that refers to its original — the sender's new document named by ``Bussiness/DocumentId``, else by the
   DocumentId it repeats — and never alters it; when there is none it is accepted all the same, with the
   deviation ``original-unknown``.
6. PDF attachments: whether each carries a valid PDF signature (reported, never refused); then, when a
   scanner is configured, every attachment goes through clamd (``gateway.malware``; a match refuses).
7. Blobs: the original bytes and every attachment are written by SHA-256 (fsynced) before the
   transaction that makes them referenced commits.
8. :func:`gateway.acceptance.accept`: the document, its attachments, one delivery per recipient and the
   ledger entry ``envelope.accepted``, whose recorded instant — read after the ledger head is locked, just
   before commit — is the sent instant (Điều 11.1). Messages reaching this step together share the
   transaction (``gateway.db.group_commit``); one that fails there is retried alone, so it never fails the
   others.
9. The receipt is built from the stored rows and signed with the gateway key (RSA PKCS#1 v1.5 is
   deterministic, so the same rows always give the same receipt bytes).

A refusal raises its :class:`~gateway.problems.GatewayError`; the caller records it in the ledger
(``envelope.refused`` / ``status.refused``, through :mod:`gateway.ledger.refusals`).

A message fetched FROM the upstream axis (``via``, :class:`FromUpstream`: the upstream poller,
:mod:`gateway.upstream.poller`) takes the same steps, with these differences: the sender is the edXML
``From`` and must be an agency of the upstream (unknown: upstream-sender-unknown; a local agency:
upstream-sender-local, unless step 1 finds the very bytes that agency sent through this gateway, which the
upstream hands back when one of its recipients is local here); the signature is checked under the
``upstream`` policy (a present signature must verify, with the register's certificate when the register has
one, else with its own; the upstream vouched for the sender); only LOCAL recipients get a delivery (the
upstream delivers to its own agencies itself; none local: upstream-no-local-recipient); the ledger actor is
``upstream:<system id>`` and the entry and the document carry the upstream's DocId.

Status messages (``POST /v1/statuses``, :meth:`IntakeService.submit_status`) take the same steps, with the
steps that concern the original document in place of 4 and 5, and no 6:

1. an identical resubmission (same reporting agency, same bytes) returns the receipt already given (200);
2. the reporting agency's register entry;
3. ``inspect_envelope`` with the agency's signature policy; a document here is refused (not-a-status);
4. the original, linked by ``ResponseFor/DocumentId`` (or the one derived from Code and PromulgationDate)
   among the documents of which the reporting agency is the sender or a recipient: ``ResponseFor/OrganId``
   names "the other party" (the original's sender in a recipient's status, the recipient in the sender's
   13, as the axis SDK writes it), so it only breaks a tie (a document it names as sender first, then a new
   document before a recall/update/replacement repeating its DocumentId, then the newest). For anyone else
   the answer is the 404 of a missing document (its existence is not revealed). A recipient may not recall
   and the sender may report nothing but a recall (status-code-not-allowed);
5. the same agency, original and code already reported by the agency itself: 409 status-duplicate, except
   05 (may repeat). The 01 the gateway wrote when the document arrived does not count: the recipient's own
   01, which its software sends after every download, is accepted and routed too;
7. the bytes go to the blob store;
8. :func:`gateway.acceptance.accept`: the status document (kind ``status``, ``refers_to`` the original),
   one delivery per target (:mod:`gateway.delivery.rules`: the sender; for 13 the recipients) and
   ``status.accepted``, whose instant is the status's sent instant;
9. the signed receipt (kind ``status``, recipients = the targets).
"""

from __future__ import annotations

import asyncio
import functools
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import metrics
from gateway.acceptance import Acceptance, Accepted, Event, Message, NewAttachment, Target, accept_many
from gateway.agency.models import AgencyCertificate
from gateway.agency.repository import AgencyRepository
from gateway.blobs import BlobStore
from gateway.db import Database
from gateway.db.group_commit import GroupCommit, Operation
from gateway.delivery.rules import RECALL, delivery_targets, status_targets
from gateway.documents.models import Document
from gateway.documents.receipts import receipt_data_of
from gateway.documents.repository import DocumentRepository
from gateway.documents.service import DocumentNotFound
from gateway.envelope import (
    Envelope,
    LargePart,
    Limits,
    ReceiptData,
    RecipientIdMalformed,
    SenderMismatch,
    TrustedCertificate,
    build_receipt,
    inspect_envelope,
)
from gateway.envelope import envelope_sha256 as digest_of
from gateway.envelope.deviations import Deviation
from gateway.intake.errors import (
    DocumentChanged,
    NotADocument,
    NotAStatus,
    RecipientNotForwarded,
    RecipientUnknown,
    StatusCodeNotAllowed,
    StatusDuplicate,
    UpstreamNoLocalRecipient,
    UpstreamSenderLocal,
    UpstreamSenderUnknown,
)
from gateway.intake.multipart import MultipartUpload
from gateway.ledger.stamping import TimestampGate
from gateway.malware import Scanner
from gateway.pdfsig import pdf_signature_state, pdf_signature_state_of
from gateway.signing import GatewayKey

#: ``Bussiness/BussinessDocType`` of a new document; 1, 2, 3 are a recall, an update, a replacement
NEW_DOCUMENT = 0


@dataclass(frozen=True)
class FromUpstream:
    """A message fetched from the upstream axis: the system this gateway is there, and the upstream's DocId."""

    system_id: str
    doc_id: str

    @property
    def actor(self) -> str:
        return f"upstream:{self.system_id}"


@dataclass(frozen=True)
class IntakeResult:
    receipt: bytes
    created: bool
    document: str
    #: a push delivery was queued (the in-process worker is woken only then)
    push: bool = False


class IntakeService:
    """Both submit paths; neither records its refusals (the caller does, through
    :class:`gateway.ledger.refusals.RefusalLog`) nor commits outside :attr:`_writes`."""

    def __init__(
        self, db: Database, blobs: BlobStore, key: GatewayKey, limits: Limits, scanner: Scanner | None = None,
        *, forwarding: bool = False, gate: TimestampGate | None = None,
    ) -> None:
        self.scanner = scanner
        #: the fail-closed rule of timestamping (gateway.ledger.stamping), when an authority is configured
        self.gate = gate
        #: an upstream axis is configured: documents to its agencies are accepted and forwarded
        self.forwarding = forwarding
        self.db = db
        # Documents and statuses reaching step 8 together share a transaction (CONTRIBUTING.md).
        self._writes: GroupCommit[Accepted] = GroupCommit(db, apply=_accept_together)
        self.blobs = blobs
        self.key = key
        self.limits = limits

    async def submit(self, sender: str, data: bytes, upload: MultipartUpload | None = None, *,
                     via: FromUpstream | None = None, digest: str | None = None) -> IntakeResult:
        """Accept a document from ``sender`` (an authenticated agency, or with ``via`` the sender a message from
        the upstream names). The caller discards ``upload``'s staged parts afterwards (those the document
        references are committed to the blob store by then)."""
        if self.gate is not None:
            await self.gate.check()
        digest = digest or digest_of(data)  # the caller's, when it hashed the bytes already
        large_parts = (
            {cid: LargePart(sha256=w.sha256, size=w.size, head=w.head) for cid, w in upload.parts.items()}
            if upload is not None
            else None
        )
        # 1, 2, 3
        checked = await self._resubmitted_or_inspected(sender, data, digest, "document", large_parts, via)
        if isinstance(checked, IntakeResult):
            return checked
        envelope, again = checked
        if envelope.kind != "document" or envelope.document is None:
            raise NotADocument()
        meta = envelope.document
        # 4, 5
        async with self.db.read() as session:
            agencies = AgencyRepository(session)
            recipients = await agencies.get_many(meta.recipient_ids)
            missing = [code for code in meta.recipient_ids if code not in recipients]
            if missing and not any(d.code == "addressed-by-alias" for d in envelope.deviations):
                # A To of the code's form may still be an alias (an agency's former code): resolve and re-check.
                aliases = await agencies.alias_map()
                if any(code in aliases for code in missing):
                    envelope = await again(aliases)
                    assert envelope.document is not None
                    meta = envelope.document
                    recipients = await agencies.get_many(meta.recipient_ids)
            missing = [code for code in meta.recipient_ids if code not in recipients or not recipients[code].active]
            if missing:
                raise RecipientUnknown(
                    f"To: {len(missing)} recipient(s) not registered or suspended", recipients=missing
                )
            upstream = [code for code in meta.recipient_ids if recipients[code].delivery_mode == "upstream"]
            if via is not None:
                if len(upstream) == len(meta.recipient_ids):
                    raise UpstreamNoLocalRecipient(f"To: {len(upstream)} recipient(s), every one of the upstream")
            elif upstream and not self.forwarding:
                raise RecipientNotForwarded(
                    f"To: {len(upstream)} recipient(s) reached through the upstream axis, and no upstream is "
                    "configured (GATEWAY_UPSTREAM_URL)", recipients=upstream,
                )
            elif upstream and upload is not None:
                raise RecipientNotForwarded(
                    f"To: {len(upstream)} recipient(s) reached through the upstream axis, which cannot carry "
                    "attachments sent as multipart parts: send them inline", recipients=upstream,
                )
            repo = DocumentRepository(session)
            deviations = list(envelope.deviations)
            original: Document | None = None
            if meta.business_doc_type == NEW_DOCUMENT:
                await self._check_unchanged(repo, sender, meta.document_id, digest)
            else:
                original = await _original_of_follow_up(repo, sender, meta.business_document_id, meta.document_id)
                if original is None:
                    deviations.append(Deviation("original-unknown", "TraceHeaderList/Bussiness/BussinessDocType"))
        # 6, 7
        pdf_states = await asyncio.to_thread(self._check_and_store, data, envelope, upload)
        # 8
        message = Message(
            kind="document", sender=sender, document_id=meta.document_id, envelope_sha256=digest,
            envelope_size=len(data), multipart=upload is not None, signed=envelope.signed,
            signer_certificate=envelope.signature.certificate_sha256, priority=meta.priority,
            subject=meta.subject, type_name=meta.type_name, code=f"{meta.code_number}/{meta.code_notation}",
            promulgation_date=meta.promulgation_date, business_doc_type=meta.business_doc_type,
            refers_to=original.id if original is not None else None,
            upstream_doc_id=via.doc_id if via is not None else None,
            attachments=tuple(NewAttachment(a.content_id, a.name, a.content_type, a.sha256, a.size,
                                            pdf_states.get(a.content_id)) for a in envelope.attachments),
            deviations=tuple(deviations),
        )
        event = Event("envelope.accepted", via.actor if via is not None else f"agency:{sender}", details={
            "envelope_sha256": digest,
            "envelope_size": len(data),
            "signed": envelope.signed,
            "signer_certificate": envelope.signature.certificate_sha256,
            "recipients": list(meta.recipient_ids),
            "attachments": [{"content_id": a.content_id, "sha256": a.sha256, "size": a.size}
                            for a in envelope.attachments],
            "priority": meta.priority,
            "business_doc_type": meta.business_doc_type,
            "refers_to": original.id if original is not None else None,
            "deviations": [d.as_json() for d in deviations],
            **_arrival_details(via, upstream, envelope),
        })
        # From the upstream, its own agencies are left to it (it fans out); else every recipient gets a delivery.
        targets = delivery_targets(recipients[c] for c in meta.recipient_ids if via is None or c not in upstream)
        try:
            accepted = await self._accept(message, targets, event)
        except IntegrityError:
            # A concurrent submission of the same DocumentId won the race: answer as if it came first.
            async with self.db.read() as session:
                winner = await DocumentRepository(session).by_document_id(sender, meta.document_id)
                if winner is None or winner.envelope_sha256 != digest:
                    raise DocumentChanged() from None
                return IntakeResult(await self._receipt_for(session, winner), False, winner.id)
        # 9 (from the rows just committed, as they were stored: nothing is read back while the head is locked)
        return await self._result(accepted)

    async def _resubmitted_or_inspected(
        self, sender: str, data: bytes, digest: str, kind: str, large_parts: dict[str, LargePart] | None,
        via: FromUpstream | None,
    ) -> IntakeResult | tuple[Envelope, Callable[[dict[str, str]], Awaitable[Envelope]]]:
        """Steps 1 to 3: the receipt already given for these bytes (an identical resubmission), or the envelope
        as :func:`~gateway.envelope.inspect_envelope` found it under the sender's register entry, with the way
        to inspect it again under the register's aliases.

        The register's aliases are read only when the codes alone do not make sense of the envelope (a ``From``
        or ``To`` that is no code, or a ``To`` naming no registered agency — see :meth:`submit`): standard
        traffic costs no extra statement, an envelope addressed by alias is inspected twice."""
        # reads, no transaction: step 8's constraints back up every check made before it
        async with self.db.read() as session:
            documents = DocumentRepository(session)
            found = await documents.sender_for_intake(sender, digest, kind)
            existing = await documents.get(found[0]) if found is not None and found[0] is not None else None
            if existing is not None:
                return IntakeResult(await self._receipt_for(session, existing), False, existing.id)
            if via is not None:
                if found is None:
                    raise UpstreamSenderUnknown(f"{sender!r} is not in the register: run `gateway upstream "
                                                "agencies sync`", sender=sender)
                if found[1].delivery_mode != "upstream":
                    raise UpstreamSenderLocal(sender=sender)
            assert found is not None  # authenticated agencies exist
            _, agency, certs = found
        inspect = functools.partial(
            inspect_envelope,
            data,
            sender=sender,
            certificates=_trusted(certs),
            now=datetime.now(UTC),
            policy="upstream" if via is not None else "channel" if agency.signature_policy == "channel" else "required",
            limits=self.limits,
            large_parts=large_parts,
        )

        async def again(aliases: dict[str, str]) -> Envelope:
            return await asyncio.to_thread(functools.partial(inspect, aliases=aliases))

        try:
            return await asyncio.to_thread(inspect), again
        except (RecipientIdMalformed, SenderMismatch):
            aliases = await self._aliases()
            if not aliases:
                raise
            return await again(aliases), again

    async def _aliases(self) -> dict[str, str]:
        async with self.db.read() as session:
            return await AgencyRepository(session).alias_map()

    async def _accept(self, message: Message, targets: Sequence[Target], event: Event) -> Accepted:
        """Step 8, in a transaction shared with the other messages being stored at this moment (one ledger
        lock, one commit for all of them); returns once it has committed."""
        accepted = await self._writes.run(Acceptance(message, targets, event))
        metrics.DOCUMENTS_ACCEPTED.labels(kind=accepted.document.kind).inc()
        return accepted

    async def _result(self, accepted: Accepted) -> IntakeResult:
        receipt = await asyncio.to_thread(
            self._sign, receipt_data_of(accepted.document, accepted.attachments, accepted.deliveries))
        return IntakeResult(receipt, True, accepted.document.id,
                            push=any(d.mode in ("push", "upstream") for d in accepted.deliveries))

    async def _check_unchanged(self, repo: DocumentRepository, sender: str, document_id: str, digest: str) -> None:
        previous = await repo.by_document_id(sender, document_id)
        if previous is not None and previous.envelope_sha256 != digest:
            raise DocumentChanged(f"DocumentId already accepted at {previous.sent_at.isoformat()}",
                                  document=previous.id)

    def _check_and_store(self, data: bytes, envelope: Envelope, upload: MultipartUpload | None
                         ) -> dict[str, str | None]:
        """Steps 6 and 7 in one worker thread (one hand-off instead of one per file; issue 17): each PDF's
        signature state, the malware scan when configured (a match raises before anything is stored), then the
        fsynced blob writes — off the event loop, so that neither it nor a ledger lock that another request of
        this process holds meanwhile waits for the disk."""
        states = self._pdf_states(envelope, upload)
        if self.scanner is not None:
            self._scan(self.scanner, envelope, upload)
        self.blobs.put(data)
        for attachment in envelope.attachments:
            if attachment.data is not None:
                self.blobs.put(attachment.data)
            elif upload is not None:
                self.blobs.commit(upload.parts[attachment.content_id])
        return states

    @staticmethod
    def _scan(scanner: Scanner, envelope: Envelope, upload: MultipartUpload | None) -> None:
        for attachment in envelope.attachments:
            if attachment.data is not None:
                scanner.scan(io.BytesIO(attachment.data), attachment.name)
            elif upload is not None:
                with upload.parts[attachment.content_id].path.open("rb") as fh:
                    scanner.scan(fh, attachment.name)

    def _pdf_states(self, envelope: Envelope, upload: MultipartUpload | None) -> dict[str, str | None]:
        states: dict[str, str | None] = {}
        for attachment in envelope.attachments:
            if attachment.file_type != "pdf":
                states[attachment.content_id] = None
            elif attachment.data is not None:
                states[attachment.content_id] = pdf_signature_state(attachment.data)
            elif upload is not None:
                with upload.parts[attachment.content_id].path.open("rb") as fh:
                    states[attachment.content_id] = pdf_signature_state_of(fh)
        return states

    async def _receipt_for(self, session: AsyncSession, document: Document) -> bytes:
        repo = DocumentRepository(session)
        data = receipt_data_of(document, await repo.attachments(document.id), await repo.deliveries(document.id))
        return await asyncio.to_thread(self._sign, data)

    def _sign(self, data: ReceiptData) -> bytes:
        return build_receipt(data, self.key.private_key, self.key.certificate)  # type: ignore[arg-type]

    # -- status messages ---------------------------------------------------------------------------------

    async def submit_status(self, reporter: str, data: bytes, *, via: FromUpstream | None = None,
                            digest: str | None = None) -> IntakeResult:
        """Accept a status message about a document (the steps in the module docstring)."""
        if self.gate is not None:
            await self.gate.check()
        digest = digest or digest_of(data)
        # 1, 2, 3
        checked = await self._resubmitted_or_inspected(reporter, data, digest, "status", None, via)
        if isinstance(checked, IntakeResult):
            return checked
        envelope, _again = checked
        if envelope.kind != "status" or envelope.status is None:
            raise NotAStatus()
        meta = envelope.status
        # 4, 5
        async with self.db.read() as session:
            repo = DocumentRepository(session)
            original = _status_subject(await repo.originals_named(meta.document_id, reporter),
                                       meta.response_for.organ_id)
            if original is None:
                raise DocumentNotFound()
            recipients = await repo.recipients_of(original.id)
            is_sender, is_recipient = original.sender == reporter, reporter in recipients
            if meta.status_code == RECALL and not is_sender:
                raise StatusCodeNotAllowed("only the sender of a document may recall it (13)")
            if meta.status_code != RECALL and not is_recipient:
                raise StatusCodeNotAllowed("the sender of a document may only recall it (13)")
            if meta.status_code != "05" and await repo.status_exists(reporter, original.id, meta.status_code,
                                                                      own_only=True):
                raise StatusDuplicate()
            codes = status_targets(meta.status_code, reporter, original.sender, recipients)
            agencies_by_code = await AgencyRepository(session).get_many(codes)
        upstream = sorted(c for c, a in agencies_by_code.items() if a.delivery_mode == "upstream")
        targets = delivery_targets(agencies_by_code[c] for c in sorted(agencies_by_code)
                                   if via is None or c not in upstream)
        # 7
        await asyncio.to_thread(self.blobs.put, data)
        # 8
        message = Message(
            kind="status", sender=reporter, document_id=original.document_id, envelope_sha256=digest,
            envelope_size=len(data), signed=envelope.signed, signer_certificate=envelope.signature.certificate_sha256,
            priority=original.priority, code=original.code, promulgation_date=original.promulgation_date,
            status_code=meta.status_code, refers_to=original.id, deviations=envelope.deviations,
            upstream_doc_id=via.doc_id if via is not None else None,
        )
        event = Event("status.accepted", via.actor if via is not None else f"agency:{reporter}", details={
            "status_code": meta.status_code,
            "refers_to": original.id,
            "original_sender": original.sender,
            "envelope_sha256": digest,
            "envelope_size": len(data),
            "signed": envelope.signed,
            "signer_certificate": envelope.signature.certificate_sha256,
            "routed_to": sorted(t.code for t in targets),
            "deviations": [d.as_json() for d in envelope.deviations],
            **_arrival_details(via, upstream, envelope),
        })
        try:
            accepted = await self._accept(message, targets, event)
        except IntegrityError:
            # A concurrent submission won: the same bytes get its receipt, other bytes are a duplicate.
            async with self.db.read() as session:
                winner = await DocumentRepository(session).by_envelope(reporter, digest, "status")
                if winner is None:
                    raise StatusDuplicate() from None
                return IntakeResult(await self._receipt_for(session, winner), False, winner.id)
        # 9
        return await self._result(accepted)


async def _accept_together(session: AsyncSession, ops: list[Operation[Accepted]]) -> list[Accepted]:
    """The group commit's batch of acceptances in one go (:func:`gateway.acceptance.accept_many`: one INSERT per
    table for all of them, rather than three or four statements each)."""
    items = [op for op in ops if isinstance(op, Acceptance)]
    if len(items) == len(ops):
        return await accept_many(session, items)
    return [await op(session) for op in ops]


def _arrival_details(via: FromUpstream | None, upstream: Sequence[str], envelope: Envelope) -> dict[str, object]:
    """What an accepted entry adds for a message from the upstream: its DocId there, the recipients it delivers
    itself, and where the signer's certificate came from (``register``, or ``keyinfo``: the signature's own,
    for a sender the register holds no certificate of; None when unsigned)."""
    if via is None:
        return {}
    return {"upstream_doc_id": via.doc_id, "left_to_upstream": sorted(upstream),
            "certificate_source": envelope.signature.certificate_source}


async def _original_of_follow_up(repo: DocumentRepository, sender: str, business_document_id: str | None,
                                 document_id: str) -> Document | None:
    """The sender's new document a recall, update or replacement is about: the one ``Bussiness/DocumentId``
    names (EDXML.md: "the document concerned"), else the one whose DocumentId it repeats (the axis SDK's
    way, samples ext02-ext04)."""
    for candidate in (business_document_id, document_id):
        if candidate:
            found = await repo.by_document_id(sender, candidate)
            if found is not None:
                return found
    return None


def _status_subject(candidates: Sequence[Document], named: str | None) -> Document | None:
    """Step 4's tie-break among the documents with the status's DocumentId that the reporter is party to
    (newest first): one whose sender ``ResponseFor/OrganId`` names, then a new document before the
    recalls, updates and replacements that repeat its DocumentId, then the newest."""
    named = named.strip() if named else None
    ranked = sorted(candidates, key=lambda d: (d.sender != named, d.business_doc_type != NEW_DOCUMENT))
    return ranked[0] if ranked else None


def _trusted(certs: Sequence[AgencyCertificate]) -> list[TrustedCertificate]:
    from cryptography import x509

    return [
        TrustedCertificate(sha256=c.sha256, certificate=x509.load_pem_x509_certificate(c.pem.encode("ascii")),
                           revoked_at=c.revoked_at)
        for c in certs
    ]
