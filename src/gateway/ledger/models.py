"""ORM mapping of the ledger (migration 0001), its signed checkpoints (0003) and its Merkle tree's nodes (0009);
all append-only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, SmallInteger, String, Text
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


class LedgerCheckpoint(Base):
    """A signed statement of the chain head: see :mod:`gateway.ledger.checkpoint` for the signed bytes."""

    __tablename__ = "ledger_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    head_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    algorithm: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(Text)  # base64
    certificate_sha256: Mapped[str] = mapped_column(String(64))
    #: the Merkle tree's root at ``size`` (gateway.ledger.tree; null for a checkpoint signed before 0009)
    root_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    #: the checkpoint as a C2SP signed note (origin, size, root; gateway.ledger.note), null before 0009
    note: Mapped[str | None] = mapped_column(Text, default=None)


class LedgerMerkleNode(Base):
    """The hash of one complete perfect subtree of the ledger's Merkle tree (gateway.ledger.merkle)."""

    __tablename__ = "ledger_merkle_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))


class LedgerWitness(Base):
    """A party whose cosignatures of checkpoints the gateway takes (gateway.ledger.witnesses)."""

    __tablename__ = "ledger_witnesses"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    verifier_key: Mapped[str] = mapped_column(Text)  # C2SP: <name>+<key ID>+<base64 key>
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerCosignature(Base):
    """A witness's signature line over a checkpoint's note, verified before it was stored."""

    __tablename__ = "ledger_cosignatures"

    size: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_checkpoints.size"), primary_key=True,
                                      autoincrement=False)
    witness: Mapped[str] = mapped_column(String(200), ForeignKey("ledger_witnesses.name"), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerCheckpointTimestamp(Base):
    """The RFC 3161 token over SHA-256 of a checkpoint's note (gateway.ledger.stamping)."""

    __tablename__ = "ledger_checkpoint_timestamps"

    size: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_checkpoints.size"), primary_key=True,
                                      autoincrement=False)
    token: Mapped[str] = mapped_column(Text)  # base64 DER TimeStampToken
    gen_time: Mapped[datetime] = mapped_column(UTCDateTime())
    tsa_certificate_sha256: Mapped[str] = mapped_column(String(64))
    stamped_at: Mapped[datetime] = mapped_column(UTCDateTime())
