"""Every SQL statement on documents, attachments and deliveries used by intake and the document view."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.documents.models import Attachment, Delivery, Document


class DocumentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, document: str) -> Document | None:
        return await self.session.get(Document, document)

    async def by_envelope(self, sender: str, envelope_sha256: str, kind: str) -> Document | None:
        result = await self.session.execute(
            select(Document)
            .where(Document.sender == sender, Document.envelope_sha256 == envelope_sha256, Document.kind == kind)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def by_document_id(self, sender: str, document_id: str) -> Document | None:
        """The new document (BussinessDocType 0) ``sender`` sent under ``document_id``: unique (migration
        0005); the recalls, updates and replacements that repeat its DocumentId are other rows."""
        result = await self.session.execute(
            select(Document).where(
                Document.sender == sender, Document.document_id == document_id, Document.kind == "document",
                Document.business_doc_type == 0,
            )
        )
        return result.scalar_one_or_none()

    async def find_by_document_id(self, document_id: str) -> Sequence[Document]:
        result = await self.session.execute(
            select(Document).where(Document.document_id == document_id, Document.kind == "document")
            .order_by(Document.sent_at)
        )
        return result.scalars().all()

    async def attachments(self, document: str) -> Sequence[Attachment]:
        result = await self.session.execute(
            select(Attachment).where(Attachment.document == document).order_by(Attachment.ordinal)
        )
        return result.scalars().all()

    async def deliveries(self, document: str) -> Sequence[Delivery]:
        result = await self.session.execute(
            select(Delivery).where(Delivery.document == document).order_by(Delivery.recipient)
        )
        return result.scalars().all()

    async def latest_statuses(self, document: str) -> dict[str, str]:
        """The latest status code each agency reported about ``document`` (by sent instant)."""
        latest = (
            select(Document.sender, func.max(Document.sent_at).label("at"))
            .where(Document.refers_to == document, Document.kind == "status")
            .group_by(Document.sender)
            .subquery()
        )
        result = await self.session.execute(
            select(Document.sender, Document.status_code).join(
                latest, and_(Document.sender == latest.c.sender, Document.sent_at == latest.c.at)
            ).where(Document.refers_to == document, Document.kind == "status")
        )
        return {sender: code for sender, code in result.all() if code is not None}

    async def statuses_of(self, document: str) -> Sequence[Document]:
        """The status messages about ``document``, oldest first."""
        result = await self.session.execute(
            select(Document).where(Document.refers_to == document, Document.kind == "status")
            .order_by(Document.sent_at, Document.id)
        )
        return result.scalars().all()

    async def is_party(self, document: Document, agency: str) -> bool:
        if document.sender == agency:
            return True
        result = await self.session.execute(
            select(func.count()).select_from(Delivery).where(
                Delivery.document == document.id, Delivery.recipient == agency
            )
        )
        return bool(result.scalar_one())

    async def visible_ids(self, ids: Sequence[str], agency: str) -> set[str]:
        if not ids:
            return set()
        result = await self.session.execute(
            select(Document.id).where(
                Document.id.in_(list(ids)),
                or_(
                    Document.sender == agency,
                    Document.id.in_(select(Delivery.document).where(Delivery.recipient == agency)),
                ),
            )
        )
        return set(result.scalars())

    async def recipients_of(self, document: str) -> list[str]:
        result = await self.session.execute(
            select(Delivery.recipient).where(Delivery.document == document).order_by(Delivery.recipient)
        )
        return list(result.scalars())

    async def status_exists(self, sender: str, refers_to: str, code: str, *, own_only: bool = False) -> bool:
        """Whether ``sender`` reported ``code`` about ``refers_to``; ``own_only``: not counting the 01 the
        gateway wrote in its name (migration 0005)."""
        stmt = select(func.count()).select_from(Document).where(
            Document.kind == "status", Document.sender == sender, Document.refers_to == refers_to,
            Document.status_code == code,
        )
        if own_only:
            stmt = stmt.where(Document.automatic.is_(False))
        result = await self.session.execute(stmt)
        return bool(result.scalar_one())

    async def originals_named(self, document_id: str, party: str) -> Sequence[Document]:
        """The documents (not statuses) with this DocumentId of which ``party`` is the sender or a recipient,
        newest first: the candidates a status message's ``ResponseFor/DocumentId`` may be about."""
        result = await self.session.execute(
            select(Document).where(
                Document.kind == "document", Document.document_id == document_id,
                or_(Document.sender == party,
                    Document.id.in_(select(Delivery.document).where(Delivery.recipient == party))),
            ).order_by(Document.sent_at.desc(), Document.id)
        )
        return result.scalars().all()

    def add_all(self, rows: Sequence[Document | Attachment | Delivery]) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()
