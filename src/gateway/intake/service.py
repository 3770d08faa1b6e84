"""Intake: verify an envelope, store it, fix the sent instant, and sign the receipt.

The steps, in order (the envelope's own checks are numbered in ``gateway.envelope``):

1. An identical resubmission (same sender, same envelope bytes) returns the receipt already given (200),
   storing nothing.
2. The sender's register entry (signature policy, certificates) is read.
3. ``gateway.envelope.inspect_envelope`` runs every content check on the bytes and any multipart parts.
4. Every recipient is a registered, active agency.
5. The same sender and DocumentId with a different envelope: 409 (Điều 12.8, a sent document never changes).
6. PDF attachments: whether each carries a valid PDF signature (reported, never refused).
7. Blobs: the original bytes and every attachment are written by SHA-256 (fsynced) before the
   transaction that makes them referenced commits.
8. One transaction: the document, its attachments, one delivery per recipient and the ledger entry
   ``envelope.accepted``, whose recorded instant — read after the ledger head is locked, just before
   commit — is the sent instant (Điều 11.1).
9. The receipt is built from the stored rows and signed with the gateway key (RSA PKCS#1 v1.5 is
   deterministic, so the same rows always give the same receipt bytes).

Any refusal is written to the ledger as ``envelope.refused`` (rule, envelope digest and size, never the
content) in a transaction of its own, and staged parts are deleted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.models import Agency, AgencyCertificate
from gateway.agency.repository import AgencyRepository
from gateway.auth.principal import Principal
from gateway.blobs import BlobStore
from gateway.db import Database
from gateway.documents.models import Attachment, Delivery, Document
from gateway.documents.repository import DocumentRepository
from gateway.envelope import (
    Envelope,
    LargePart,
    Limits,
    ReceiptAttachment,
    ReceiptData,
    TrustedCertificate,
    build_receipt,
    inspect_envelope,
)
from gateway.envelope import envelope_sha256 as digest_of
from gateway.intake.errors import DocumentChanged, NotADocument, RecipientUnknown
from gateway.intake.multipart import MultipartUpload
from gateway.ledger import service as ledger
from gateway.pdfsig import pdf_signature_state, pdf_signature_state_of
from gateway.problems import GatewayError
from gateway.signing import GatewayKey


@dataclass(frozen=True)
class IntakeResult:
    receipt: bytes
    created: bool
    document: str


class IntakeService:
    def __init__(self, db: Database, blobs: BlobStore, key: GatewayKey, limits: Limits) -> None:
        self.db = db
        self.blobs = blobs
        self.key = key
        self.limits = limits

    async def submit(self, principal: Principal, data: bytes, upload: MultipartUpload | None = None) -> IntakeResult:
        sender = principal.agency_code
        assert sender is not None
        digest = digest_of(data)
        try:
            return await self._submit(sender, data, digest, upload)
        except GatewayError as error:
            await self.record_refusal(principal, digest, len(data), error)
            raise
        finally:
            if upload is not None:
                upload.discard()

    async def _submit(self, sender: str, data: bytes, digest: str, upload: MultipartUpload | None) -> IntakeResult:
        # 1, 2
        async with self.db.transaction() as session:
            existing = await DocumentRepository(session).by_envelope(sender, digest, "document")
            if existing is not None:
                return IntakeResult(await self._receipt_for(session, existing), False, existing.id)
            agencies = AgencyRepository(session)
            agency = await agencies.get(sender)
            assert agency is not None  # authenticated agencies exist
            certs = list(await agencies.certificates(sender))
        # 3
        large_parts = (
            {cid: LargePart(sha256=w.sha256, size=w.size, head=w.head) for cid, w in upload.parts.items()}
            if upload is not None
            else None
        )
        now = datetime.now(UTC)
        envelope = await asyncio.to_thread(
            inspect_envelope,
            data,
            sender=sender,
            certificates=_trusted(certs),
            now=now,
            policy="channel" if agency.signature_policy == "channel" else "required",
            limits=self.limits,
            large_parts=large_parts,
        )
        if envelope.kind != "document" or envelope.document is None:
            raise NotADocument()
        meta = envelope.document
        # 4, 5
        async with self.db.transaction() as session:
            recipients = await AgencyRepository(session).get_many(meta.recipient_ids)
            missing = [code for code in meta.recipient_ids if code not in recipients or not recipients[code].active]
            if missing:
                raise RecipientUnknown(
                    f"To: {len(missing)} recipient(s) not registered or suspended", recipients=missing
                )
            await self._check_unchanged(DocumentRepository(session), sender, meta.document_id, digest)
        # 6
        pdf_states = await asyncio.to_thread(self._pdf_states, envelope, upload)
        # 7
        self.blobs.put(data)
        for attachment in envelope.attachments:
            if attachment.data is not None:
                self.blobs.put(attachment.data)
            elif upload is not None:
                self.blobs.commit(upload.parts[attachment.content_id])
        # 8
        document_uuid = str(uuid.uuid4())
        try:
            async with self.db.transaction() as session:
                document = await self._store(session, document_uuid, sender, digest, len(data), envelope,
                                             [recipients[c] for c in meta.recipient_ids], pdf_states,
                                             upload is not None)
                receipt_data = await self._receipt_data(session, document)
        except IntegrityError:
            # A concurrent submission of the same DocumentId won the race: answer as if it came first.
            async with self.db.transaction() as session:
                repo = DocumentRepository(session)
                winner = await repo.by_document_id(sender, meta.document_id)
                if winner is None or winner.envelope_sha256 != digest:
                    raise DocumentChanged() from None
                return IntakeResult(await self._receipt_for(session, winner), False, winner.id)
        # 9
        receipt = await asyncio.to_thread(self._sign, receipt_data)
        return IntakeResult(receipt, True, document.id)

    async def _check_unchanged(self, repo: DocumentRepository, sender: str, document_id: str, digest: str) -> None:
        previous = await repo.by_document_id(sender, document_id)
        if previous is not None and previous.envelope_sha256 != digest:
            raise DocumentChanged(f"DocumentId already accepted at {previous.sent_at.isoformat()}",
                                  document=previous.id)

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

    async def _store(
        self,
        session: AsyncSession,
        document_uuid: str,
        sender: str,
        digest: str,
        size: int,
        envelope: Envelope,
        recipients: Sequence[Agency],
        pdf_states: dict[str, str | None],
        multipart: bool,
    ) -> Document:
        meta = envelope.document
        assert meta is not None
        now = datetime.now(UTC)
        document = Document(
            id=document_uuid,
            kind="document",
            sender=sender,
            document_id=meta.document_id,
            envelope_sha256=digest,
            envelope_size=size,
            multipart=multipart,
            signed=envelope.signed,
            signer_certificate=envelope.signature.certificate_sha256,
            subject=meta.subject,
            type_name=meta.type_name,
            code=f"{meta.code_number}/{meta.code_notation}",
            promulgation_date=meta.promulgation_date,
            priority=meta.priority,
            business_doc_type=meta.business_doc_type,
            status_code=None,
            refers_to=None,
            sent_at=now,
            ledger_seq=0,
            ledger_hash="",
        )
        rows: list[Document | Attachment | Delivery] = [document]
        rows += [
            Attachment(document=document_uuid, ordinal=i, content_id=a.content_id, name=a.name,
                       content_type=a.content_type, sha256=a.sha256, size=a.size,
                       pdf_signature=pdf_states.get(a.content_id))
            for i, a in enumerate(envelope.attachments)
        ]
        rows += [
            Delivery(id=str(uuid.uuid4()), document=document_uuid, recipient=r.code, mode=r.delivery_mode,
                     state="pending", priority=meta.priority, created_at=now, updated_at=now, attempts=0,
                     next_attempt_at=now if r.delivery_mode == "push" else None, lease_owner=None,
                     lease_until=None, last_error=None, received_at=None)
            for r in recipients
        ]
        repo = DocumentRepository(session)
        # The document row goes first: attachments and deliveries reference it.
        repo.add_all(rows[:1])
        await repo.flush()
        repo.add_all(rows[1:])
        await repo.flush()
        entry = await ledger.append(
            session,
            type="envelope.accepted",
            actor=f"agency:{sender}",
            document=document_uuid,
            document_id=meta.document_id,
            sender=sender,
            details={
                "envelope_sha256": digest,
                "envelope_size": size,
                "signed": envelope.signed,
                "signer_certificate": envelope.signature.certificate_sha256,
                "recipients": list(meta.recipient_ids),
                "attachments": [{"content_id": a.content_id, "sha256": a.sha256, "size": a.size}
                                for a in envelope.attachments],
                "priority": meta.priority,
            },
        )
        document.sent_at = entry.recorded_at
        document.ledger_seq = entry.seq
        document.ledger_hash = entry.hash
        await repo.flush()
        return document

    async def _receipt_data(self, session: AsyncSession, document: Document) -> ReceiptData:
        repo = DocumentRepository(session)
        attachments = await repo.attachments(document.id)
        deliveries = await repo.deliveries(document.id)
        return ReceiptData(
            gateway_document_id=document.id,
            document_id=document.document_id,
            sender=document.sender,
            recipients=tuple(sorted(d.recipient for d in deliveries)),
            envelope_sha256=document.envelope_sha256,
            attachments=tuple(ReceiptAttachment(a.content_id, a.name, a.sha256, a.size) for a in attachments),
            signed=document.signed,
            sent_at=document.sent_at,
            ledger_sequence=document.ledger_seq,
            ledger_entry_hash=document.ledger_hash,
            signer_certificate_sha256=document.signer_certificate,
            kind="status" if document.kind == "status" else "document",
        )

    async def _receipt_for(self, session: AsyncSession, document: Document) -> bytes:
        data = await self._receipt_data(session, document)
        return await asyncio.to_thread(self._sign, data)

    def _sign(self, data: ReceiptData) -> bytes:
        return build_receipt(data, self.key.private_key, self.key.certificate)  # type: ignore[arg-type]

    async def record_refusal(
        self, principal: Principal, digest: str | None, size: int | None, error: GatewayError
    ) -> None:
        """The ledger's record of a refusal: who, which rule, which bytes (by digest), never the content."""
        async with self.db.transaction() as session:
            await ledger.append(
                session,
                type="envelope.refused",
                actor=principal.actor,
                sender=principal.agency_code,
                details={"rule": error.slug, "status": error.status, "envelope_sha256": digest,
                         "envelope_size": size},
            )


def _trusted(certs: Sequence[AgencyCertificate]) -> list[TrustedCertificate]:
    from cryptography import x509

    return [
        TrustedCertificate(sha256=c.sha256, certificate=x509.load_pem_x509_certificate(c.pem.encode("ascii")),
                           revoked_at=c.revoked_at)
        for c in certs
    ]
