"""Reading documents: who may see one (sender, recipients, operators) and what they see."""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from typing import Literal, cast

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.documents.models import Document
from gateway.documents.repository import DocumentRepository
from gateway.documents.schemas import (
    AttachmentView,
    DeliveryMode,
    DeliveryState,
    DeviationView,
    DocumentView,
    RecipientView,
    StatusRef,
)
from gateway.principal import Principal
from gateway.problems import NotFound

VN_TZ = timezone(timedelta(hours=7), "+07:00")


class DocumentNotFound(NotFound):
    slug = "document-not-found"
    title = "No such document, or not one you sent or received"


class DocumentService:
    def __init__(self, session: AsyncSession) -> None:
        self.repo = DocumentRepository(session)

    async def _visible(self, document: Document | None, principal: Principal) -> Document:
        # Another agency's document answers exactly like a missing one: its existence is not revealed.
        if document is None:
            raise DocumentNotFound()
        if principal.is_operator:
            return document
        if principal.agency_code is None or not await self.repo.is_party(document, principal.agency_code):
            raise DocumentNotFound()
        return document

    async def visible(self, document_id: str, principal: Principal) -> Document:
        """The document, if ``principal`` may see it (else the 404 of a missing one)."""
        return await self._visible(await self.repo.get(document_id), principal)

    async def view(self, document_id: str, principal: Principal) -> DocumentView:
        document = await self._visible(await self.repo.get(document_id), principal)
        return await self._render(document)

    async def _render(self, document: Document) -> DocumentView:
        attachments = await self.repo.attachments(document.id)
        deliveries = await self.repo.deliveries(document.id)
        statuses = await self.repo.latest_statuses(document.id)
        reported = await self.repo.statuses_of(document.id)
        return DocumentView(
            id=document.id,
            document_id=document.document_id,
            kind="status" if document.kind == "status" else "document",
            sender=document.sender,
            sent_at=document.sent_at,
            sent_at_local=document.sent_at.astimezone(VN_TZ),
            signed=document.signed,
            subject=document.subject,
            type_name=document.type_name,
            code=document.code,
            promulgation_date=document.promulgation_date,
            priority=document.priority,
            business_doc_type=document.business_doc_type,
            status_code=document.status_code,
            refers_to=document.refers_to,
            envelope_sha256=document.envelope_sha256,
            ledger_seq=document.ledger_seq,
            ledger_hash=document.ledger_hash,
            attachments=[
                AttachmentView(
                    content_id=a.content_id, name=a.name, content_type=a.content_type, sha256=a.sha256, size=a.size,
                    pdf_signature=cast(Literal["none", "valid", "invalid"] | None, a.pdf_signature),
                )
                for a in attachments
            ],
            recipients=[
                RecipientView(
                    code=d.recipient,
                    state=cast(DeliveryState, d.state),
                    mode=cast(DeliveryMode, d.mode),
                    attempts=d.attempts,
                    received_at=d.received_at,
                    status=statuses.get(d.recipient),
                    delivery_id=d.id,
                    upstream_doc_id=d.upstream_doc_id,
                    forwarded_at=d.forwarded_at,
                )
                for d in deliveries
            ],
            deviations=[DeviationView(code=d["code"], where=d["where"]) for d in json.loads(document.deviations)],
            automatic=document.automatic,
            arrived_from_upstream=document.upstream_doc_id is not None,
            upstream_doc_id=document.upstream_doc_id,
            statuses=[StatusRef(id=r.id, sender=r.sender, status_code=r.status_code or "", sent_at=r.sent_at,
                                automatic=r.automatic) for r in reported],
        )
