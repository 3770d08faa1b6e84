"""Blobs in the database, for ``GATEWAY_BLOB_STORE=postgresql`` (issue 17): nodes that share no disk.

``blobs``: one row per stored blob, by SHA-256 (hex), with its size; it is inserted in the same transaction as
its chunks, so a visible row means a complete blob. ``blob_chunks``: the bytes, 1 MiB a row, in order from 0.
On PostgreSQL the chunk column is stored uncompressed out of line (``STORAGE EXTERNAL``): attachments are mostly
compressed already, and compressing each chunk again only costs CPU. The tables are created on SQLite too (the
schema is one), where they stay empty: the PostgreSQL store refuses a SQLite database.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.base import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "blob_chunks",
        sa.Column("sha256", sa.String(64), sa.ForeignKey("blobs.sha256", ondelete="CASCADE"), primary_key=True),
        sa.Column("ordinal", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("blob_chunks")
    op.drop_table("blobs")
