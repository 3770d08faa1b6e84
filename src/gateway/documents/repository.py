"""Every SQL statement on documents, attachments and deliveries used by intake and the document view."""

from __future__ import annotations

import string
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.models import Agency, AgencyCertificate
from gateway.db.base import insert_rows
from gateway.documents.models import Attachment, Delivery, Document

# Case folding of the subject search, the same on both databases and in any database locale: ASCII letters and
# every Vietnamese letter (precomposed, NFC; Đ included) are folded to lower case, nothing else is. PostgreSQL's
# lower() follows the database's LC_CTYPE (only ASCII under the C locale) and SQLite's folds ASCII only, so the
# mapping is explicit: translate() of the subject on PostgreSQL; on SQLite (no translate(), and 67 nested
# replace() overflow its parser) a case-sensitive GLOB whose every letter is the class of its two cases, [Hh][Ộộ].
# :data:`SUBJECT_FOLD` is the same mapping for the query text, kept next to the SQL it must match.
_VI_LOWER = "àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ"
_UPPER = string.ascii_uppercase + _VI_LOWER.upper()
_LOWER = string.ascii_lowercase + _VI_LOWER
SUBJECT_FOLD = str.maketrans(_UPPER, _LOWER)
_UNFOLD = dict(zip(_LOWER, _UPPER, strict=True))


def _subject_contains(needle: str, dialect: str) -> ColumnElement[bool]:
    """The subject contains ``needle`` (already folded) with the fold above applied to the subject."""
    if dialect == "sqlite":
        pattern = "".join(f"[{c}{_UNFOLD[c]}]" if c in _UNFOLD else f"[{c}]" if c in "*?[" else c for c in needle)
        return Document.subject.op("GLOB")("*" + pattern + "*")
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.translate(Document.subject, _UPPER, _LOWER).like("%" + escaped + "%", escape="\\")


# Intake's reads, built once (issue 17's profile: building a statement and its cache key on every call cost more
# than running it); the values are bound per call.
_BY_ENVELOPE = (
    select(Document)
    .where(Document.sender == bindparam("sender"), Document.envelope_sha256 == bindparam("sha256"),
           Document.kind == bindparam("kind"))
    .limit(1)
)
# The sender's register entry and certificates, and whether it sent these very bytes before (an identical
# resubmission: the id of that document), in one statement.
_SENDER_FOR_INTAKE = (
    select(
        Agency,
        AgencyCertificate,
        select(Document.id)
        .where(Document.sender == bindparam("sender"), Document.envelope_sha256 == bindparam("sha256"),
               Document.kind == bindparam("kind"))
        .limit(1)
        .scalar_subquery(),
    )
    .outerjoin(AgencyCertificate, AgencyCertificate.agency_code == Agency.code)
    .where(Agency.code == bindparam("sender"))
    .order_by(AgencyCertificate.added_at, AgencyCertificate.sha256)
)
_BY_DOCUMENT_ID = select(Document).where(
    Document.sender == bindparam("sender"), Document.document_id == bindparam("document_id"),
    Document.kind == "document", Document.business_doc_type == 0,
)


class DocumentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, document: str) -> Document | None:
        return await self.session.get(Document, document)

    async def by_envelope(self, sender: str, envelope_sha256: str, kind: str) -> Document | None:
        result = await self.session.execute(_BY_ENVELOPE, {"sender": sender, "sha256": envelope_sha256, "kind": kind})
        return result.scalar_one_or_none()

    async def sender_for_intake(self, sender: str, envelope_sha256: str, kind: str
                                ) -> tuple[str | None, Agency, list[AgencyCertificate]] | None:
        """Intake's first read, one statement: the id of the ``kind`` message ``sender`` already sent with these
        bytes (None: new bytes), the sender's register entry and its certificates (oldest first); None when
        the register has no such agency."""
        rows = (await self.session.execute(
            _SENDER_FOR_INTAKE, {"sender": sender, "sha256": envelope_sha256, "kind": kind})).all()
        if not rows:
            return None
        return rows[0][2], rows[0][0], [cert for _, cert, _ in rows if cert is not None]

    async def by_document_id(self, sender: str, document_id: str) -> Document | None:
        """The new document (BussinessDocType 0) ``sender`` sent under ``document_id``: unique (migration
        0005); the recalls, updates and replacements that repeat its DocumentId are other rows."""
        result = await self.session.execute(_BY_DOCUMENT_ID, {"sender": sender, "document_id": document_id})
        return result.scalar_one_or_none()

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

    async def search(
        self, *, document_id: str | None = None, sender: str | None = None, recipient: str | None = None,
        state: str | None = None, kind: str | None = None, sent_from: datetime | None = None,
        sent_to: datetime | None = None, subject_contains: Sequence[str] = (), visible_to: str | None = None,
        after: tuple[datetime, str] | None = None, limit: int = 50,
    ) -> Sequence[Document]:
        """Documents newest first (``sent_at`` then ``id`` descending), after the keyset ``after``.

        ``recipient`` and ``state`` together: one delivery to that recipient is in that state.
        ``subject_contains``: already folded (:data:`SUBJECT_FOLD`) alternatives, any of which the folded
        subject contains. ``visible_to``: only what that agency sent or has a delivery of.
        """
        query = select(Document)
        if document_id is not None:
            query = query.where(Document.document_id == document_id)
        if sender is not None:
            query = query.where(Document.sender == sender)
        if kind is not None:
            query = query.where(Document.kind == kind)
        if recipient is not None or state is not None:
            delivery = select(Delivery.id).where(Delivery.document == Document.id)
            if recipient is not None:
                delivery = delivery.where(Delivery.recipient == recipient)
            if state is not None:
                delivery = delivery.where(Delivery.state == state)
            query = query.where(delivery.exists())
        if sent_from is not None:
            query = query.where(Document.sent_at >= sent_from)
        if sent_to is not None:
            query = query.where(Document.sent_at < sent_to)
        if subject_contains:
            dialect = self.session.get_bind().dialect.name
            query = query.where(or_(*(_subject_contains(n, dialect) for n in subject_contains)))
        if visible_to is not None:
            query = query.where(or_(
                Document.sender == visible_to,
                Document.id.in_(select(Delivery.document).where(Delivery.recipient == visible_to)),
            ))
        if after is not None:
            at, last_id = after
            query = query.where(or_(Document.sent_at < at, and_(Document.sent_at == at, Document.id < last_id)))
        result = await self.session.execute(
            query.order_by(Document.sent_at.desc(), Document.id.desc()).limit(limit)
        )
        return result.scalars().all()

    async def deliveries_of(self, documents: Sequence[str]) -> Sequence[Delivery]:
        """The deliveries of these documents, by document then recipient."""
        if not documents:
            return []
        result = await self.session.execute(
            select(Delivery).where(Delivery.document.in_(list(documents)))
            .order_by(Delivery.document, Delivery.recipient)
        )
        return result.scalars().all()

    async def insert_accepted(self, documents: Sequence[Document], attachments: Sequence[Attachment],
                              deliveries: Sequence[Delivery]) -> None:
        """Accepted messages' rows, each final as made: one INSERT per table (the documents first, which the
        others reference); the objects stay transient (gateway.db.base.insert_rows)."""
        await insert_rows(self.session, documents)
        await insert_rows(self.session, attachments)
        await insert_rows(self.session, deliveries)
