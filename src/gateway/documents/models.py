"""ORM mapping of documents, attachments and deliveries (tables from migration 0002)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base, UTCDateTime

DELIVERY_STATES = ("pending", "in_flight", "retry_wait", "delivered", "dead", "fetched", "failed", "forwarded")


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # document | status
    sender: Mapped[str] = mapped_column(ForeignKey("agencies.code"))
    document_id: Mapped[str] = mapped_column(String(300))
    envelope_sha256: Mapped[str] = mapped_column(String(64))
    envelope_size: Mapped[int] = mapped_column(BigInteger)
    multipart: Mapped[bool] = mapped_column(Boolean)
    signed: Mapped[bool] = mapped_column(Boolean)
    signer_certificate: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(1000))
    type_name: Mapped[str | None] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(String(100))
    promulgation_date: Mapped[date | None] = mapped_column(Date)
    priority: Mapped[int] = mapped_column(Integer)
    business_doc_type: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[str | None] = mapped_column(String(2))
    refers_to: Mapped[str | None] = mapped_column(ForeignKey("documents.id"), index=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ledger_seq: Mapped[int] = mapped_column(BigInteger)
    ledger_hash: Mapped[str] = mapped_column(String(64))
    #: the tolerated quirks of the envelope, JSON ``[{"code", "where"}]`` (migration 0005)
    deviations: Mapped[str] = mapped_column(Text, default="[]")
    #: the status 01 the gateway wrote itself when the document arrived (migration 0005)
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    #: a message that arrived from the upstream axis: the upstream's DocId of it (migration 0008)
    upstream_doc_id: Mapped[str | None] = mapped_column(String(255), default=None)


class Attachment(Base):
    __tablename__ = "attachments"

    document: Mapped[str] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_id: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str | None] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    pdf_signature: Mapped[str | None] = mapped_column(String(8))  # none | valid | invalid; null: not a PDF


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    document: Mapped[str] = mapped_column(ForeignKey("documents.id"))
    recipient: Mapped[str] = mapped_column(ForeignKey("agencies.code"))
    mode: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(12))
    priority: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(1000))
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: set by an operator's re-queue: the age bound of the new retry window counts from here (migration 0004)
    requeued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    #: mode ``upstream``: the upstream's DocId of the forward and the instant it accepted it (migration 0008)
    upstream_doc_id: Mapped[str | None] = mapped_column(String(255), default=None)
    forwarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
