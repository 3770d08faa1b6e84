"""ORM mapping of the ledger table (created, and made append-only, by migration 0001)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base, UTCDateTime
from gateway.ledger.chain import EntryFields, StoredEntry


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    type: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    document: Mapped[str | None] = mapped_column(String(36))
    document_id: Mapped[str | None] = mapped_column(String(300))
    sender: Mapped[str | None] = mapped_column(String(13))
    recipient: Mapped[str | None] = mapped_column(String(13))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def to_stored(self) -> StoredEntry:
        return StoredEntry(
            fields=EntryFields(
                seq=self.seq,
                recorded_at=self.recorded_at,
                type=self.type,
                actor=self.actor,
                document=self.document,
                document_id=self.document_id,
                sender=self.sender,
                recipient=self.recipient,
                prev_hash=self.prev_hash,
                details=self.details,
            ),
            hash=self.hash,
        )
