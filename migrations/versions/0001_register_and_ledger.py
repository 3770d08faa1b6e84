"""The agency register, credentials and the append-only ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.base import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PG_REFUSE_FUNCTION = """
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("code", sa.String(13), primary_key=True),
        sa.Column("alt_code", sa.String(64), nullable=True, unique=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("parent_code", sa.String(13), sa.ForeignKey("agencies.code"), nullable=True),
        sa.Column("delivery_mode", sa.String(8), nullable=False),
        sa.Column("endpoint", sa.String(2000), nullable=True),
        sa.Column("signature_policy", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("delivery_mode IN ('push', 'pull')", name="delivery_mode"),
        sa.CheckConstraint("signature_policy IN ('required', 'channel')", name="signature_policy"),
        sa.CheckConstraint(
            "(delivery_mode = 'push' AND endpoint IS NOT NULL) OR (delivery_mode = 'pull' AND endpoint IS NULL)",
            name="endpoint_matches_mode",
        ),
    )
    op.create_table(
        "agency_certificates",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("agency_code", sa.String(13), sa.ForeignKey("agencies.code"), nullable=False, index=True),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "operators",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'auditor')", name="role"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("agency_code", sa.String(13), sa.ForeignKey("agencies.code"), nullable=True, index=True),
        sa.Column("operator_id", sa.String(36), sa.ForeignKey("operators.id"), nullable=True, index=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "(agency_code IS NULL) <> (operator_id IS NULL)", name="exactly_one_holder"
        ),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("document", sa.String(36), nullable=True),
        sa.Column("document_id", sa.String(300), nullable=True),
        sa.Column("sender", sa.String(13), nullable=True),
        sa.Column("recipient", sa.String(13), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
    )
    op.create_index("ix_ledger_entries_document_seq", "ledger_entries", ["document", "seq"])
    op.create_index("ix_ledger_entries_sender_seq", "ledger_entries", ["sender", "seq"])
    op.create_index("ix_ledger_entries_recipient_seq", "ledger_entries", ["recipient", "seq"])
    op.create_index("ix_ledger_entries_type_seq", "ledger_entries", ["type", "seq"])
    op.create_index("ix_ledger_entries_recorded_at", "ledger_entries", ["recorded_at"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_REFUSE_FUNCTION)
        op.execute(
            "CREATE TRIGGER ledger_no_update_delete BEFORE UPDATE OR DELETE ON ledger_entries "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger_entries "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
    else:
        op.execute(
            "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger_entries "
            "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: UPDATE refused'); END"
        )
        op.execute(
            "CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger_entries "
            "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: DELETE refused'); END"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_no_truncate ON ledger_entries")
        op.execute("DROP TRIGGER IF EXISTS ledger_no_update_delete ON ledger_entries")
        op.execute("DROP FUNCTION IF EXISTS ledger_refuse_change()")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
    op.drop_table("ledger_entries")
    op.drop_table("api_tokens")
    op.drop_table("operators")
    op.drop_table("agency_certificates")
    op.drop_table("agencies")
