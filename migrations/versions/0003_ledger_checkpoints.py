"""Signed ledger checkpoints (append-only, like the ledger), and the indexes the ledger's queries need.

- ``ix_ledger_entries_document_id_seq``: ``GET /v1/ledger?document_id=…`` pages on seq within one DocumentId.
- ``ix_ledger_entries_recorded_at_seq`` replaces ``ix_ledger_entries_recorded_at``: a time range is turned
  into a seq range by its first and last entry (instants never go backwards along the chain), and ties on
  the instant are broken by seq inside the index.
- ``ix_documents_sender_id``, ``ix_deliveries_recipient_document``: what an agency may see of the ledger
  is decided by the documents it sent and received; these let that set be read from the index alone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.base import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PG_REFUSE_FUNCTION = """
CREATE FUNCTION ledger_checkpoints_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_checkpoints is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def upgrade() -> None:
    op.create_table(
        "ledger_checkpoints",
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("signed_at", UTCDateTime(), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("certificate_sha256", sa.String(64), nullable=False),
        sa.CheckConstraint("size > 0", name="size_positive"),
    )
    op.create_index("ix_ledger_entries_document_id_seq", "ledger_entries", ["document_id", "seq"])
    op.create_index("ix_ledger_entries_recorded_at_seq", "ledger_entries", ["recorded_at", "seq"])
    op.drop_index("ix_ledger_entries_recorded_at", table_name="ledger_entries")
    op.create_index("ix_documents_sender_id", "documents", ["sender", "id"])
    op.create_index("ix_deliveries_recipient_document", "deliveries", ["recipient", "document"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_REFUSE_FUNCTION)
        op.execute(
            "CREATE TRIGGER ledger_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON ledger_checkpoints "
            "FOR EACH ROW EXECUTE FUNCTION ledger_checkpoints_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_checkpoints_refuse_change()"
        )
    else:
        op.execute(
            "CREATE TRIGGER ledger_checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints "
            "BEGIN SELECT RAISE(ABORT, 'ledger_checkpoints is append-only: UPDATE refused'); END"
        )
        op.execute(
            "CREATE TRIGGER ledger_checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints "
            "BEGIN SELECT RAISE(ABORT, 'ledger_checkpoints is append-only: DELETE refused'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_checkpoints_no_truncate ON ledger_checkpoints")
        op.execute("DROP TRIGGER IF EXISTS ledger_checkpoints_no_update_delete ON ledger_checkpoints")
        op.execute("DROP FUNCTION IF EXISTS ledger_checkpoints_refuse_change()")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_checkpoints_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_checkpoints_no_delete")
    op.drop_index("ix_deliveries_recipient_document", table_name="deliveries")
    op.drop_index("ix_documents_sender_id", table_name="documents")
    op.create_index("ix_ledger_entries_recorded_at", "ledger_entries", ["recorded_at"])
    op.drop_index("ix_ledger_entries_recorded_at_seq", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_document_id_seq", table_name="ledger_entries")
    op.drop_table("ledger_checkpoints")
