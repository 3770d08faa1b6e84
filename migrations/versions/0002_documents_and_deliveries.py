"""Accepted documents and statuses, their attachments, and one delivery row per recipient.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.base import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("sender", sa.String(13), sa.ForeignKey("agencies.code"), nullable=False),
        sa.Column("document_id", sa.String(300), nullable=False),
        sa.Column("envelope_sha256", sa.String(64), nullable=False),
        sa.Column("envelope_size", sa.BigInteger(), nullable=False),
        sa.Column("multipart", sa.Boolean(), nullable=False),
        sa.Column("signed", sa.Boolean(), nullable=False),
        sa.Column("signer_certificate", sa.String(64), nullable=True),
        sa.Column("subject", sa.String(1000), nullable=True),
        sa.Column("type_name", sa.String(200), nullable=True),
        sa.Column("code", sa.String(100), nullable=True),
        sa.Column("promulgation_date", sa.Date(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("business_doc_type", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.String(2), nullable=True),
        sa.Column("refers_to", sa.String(36), sa.ForeignKey("documents.id"), nullable=True, index=True),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.Column("ledger_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("kind IN ('document', 'status')", name="kind"),
    )
    op.create_index(
        "uq_documents_sender_document_id", "documents", ["sender", "document_id"], unique=True,
        sqlite_where=sa.text("kind = 'document'"), postgresql_where=sa.text("kind = 'document'"),
    )
    op.create_index("ix_documents_sender_envelope", "documents", ["sender", "envelope_sha256"])
    op.create_index("ix_documents_document_id", "documents", ["document_id"])
    op.create_index("ix_documents_sent_at", "documents", ["sent_at"])
    op.create_table(
        "attachments",
        sa.Column("document", sa.String(36), sa.ForeignKey("documents.id"), primary_key=True),
        sa.Column("ordinal", sa.Integer(), primary_key=True),
        sa.Column("content_id", sa.String(300), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("pdf_signature", sa.String(8), nullable=True),
        sa.CheckConstraint("pdf_signature IN ('none', 'valid', 'invalid')", name="pdf_signature"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("document", sa.String(36), sa.ForeignKey("documents.id"), nullable=False),
        sa.Column("recipient", sa.String(13), sa.ForeignKey("agencies.code"), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(1000), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("document", "recipient", name="uq_deliveries_document_recipient"),
        sa.CheckConstraint("mode IN ('push', 'pull')", name="mode"),
        sa.CheckConstraint(
            "state IN ('pending', 'in_flight', 'retry_wait', 'delivered', 'dead', 'fetched', 'failed')",
            name="state",
        ),
    )
    op.create_index("ix_deliveries_claim", "deliveries", ["mode", "state", "priority", "next_attempt_at"])
    op.create_index("ix_deliveries_inbox", "deliveries", ["recipient", "state", "priority", "created_at"])
    op.create_index("ix_deliveries_document", "deliveries", ["document"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("attachments")
    op.drop_index("ix_documents_sent_at", table_name="documents")
    op.drop_index("ix_documents_document_id", table_name="documents")
    op.drop_index("ix_documents_sender_envelope", table_name="documents")
    op.drop_index("uq_documents_sender_document_id", table_name="documents")
    op.drop_table("documents")
