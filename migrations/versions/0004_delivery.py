"""Delivery: the start of a re-queued delivery's retry window, and one status per (agency, document, code).

``deliveries.requeued_at``: an operator's re-queue (``POST /v1/deliveries/{id}/retry``) starts a new retry
window; the age bound (``delivery_max_age_seconds``) counts from it instead of from ``created_at``.

``uq_documents_status``: a status repeated with the same reporting agency, document and code is a duplicate
(EDXML.md), except 05 (in progress), which may repeat. The service checks first and answers 409; the index
makes the rule hold under concurrent submissions too.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.base import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_STATUS_WHERE = "kind = 'status' AND status_code <> '05'"


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("requeued_at", UTCDateTime(), nullable=True))
    op.create_index(
        "uq_documents_status", "documents", ["sender", "refers_to", "status_code"], unique=True,
        sqlite_where=sa.text(_STATUS_WHERE), postgresql_where=sa.text(_STATUS_WHERE),
    )


def downgrade() -> None:
    op.drop_index("uq_documents_status", table_name="documents")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("requeued_at")
