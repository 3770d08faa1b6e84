"""Forwarding to and receiving from the upstream axis (issue 15).

``deliveries.mode`` gains ``upstream``: a delivery to an agency reached through the upstream axis, carried by
forwarding the original bytes there with sendEdoc (one forward per document, the upstream fanning out).
``deliveries.state`` gains ``forwarded``: the upstream accepted the forward (``forwarded_at``, the hand-off
instant; ``upstream_doc_id``, the upstream's DocId); the delivery becomes ``delivered`` when the upstream
reports the recipient's received instant (getSentEdocList).

``documents.upstream_doc_id``: a message that arrived FROM the upstream (the poller), the upstream's DocId
of it (unique with ``kind``: the upstream's ids of documents and of statuses are separate lists).

``leases``: named leases that make a loop run in one process at a time across every process sharing the
database (the upstream poller: ``gateway serve`` and any number of ``gateway worker`` may run it; one holds
it, the others wait for it to expire).

On SQLite the deliveries table is rebuilt by Alembic's batch mode to change its CHECK constraints (no table
references ``deliveries``, so its drop-and-rename is safe, unlike ``agencies`` in 0007).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.base import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OLD_MODES = "mode IN ('push', 'pull')"
_NEW_MODES = "mode IN ('push', 'pull', 'upstream')"
_OLD_STATES = "state IN ('pending', 'in_flight', 'retry_wait', 'delivered', 'dead', 'fetched', 'failed')"
_NEW_STATES = ("state IN ('pending', 'in_flight', 'retry_wait', 'delivered', 'dead', 'fetched', 'failed', "
               "'forwarded')")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("upstream_doc_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("forwarded_at", UTCDateTime(), nullable=True))
        batch.drop_constraint("mode", type_="check")
        batch.drop_constraint("state", type_="check")
        batch.create_check_constraint("mode", _NEW_MODES)
        batch.create_check_constraint("state", _NEW_STATES)
    op.create_index("ix_deliveries_upstream_doc_id", "deliveries", ["upstream_doc_id"])
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("upstream_doc_id", sa.String(255), nullable=True))
    op.create_index("uq_documents_upstream_doc_id", "documents", ["kind", "upstream_doc_id"], unique=True)
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("until", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("uq_documents_upstream_doc_id", table_name="documents")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("upstream_doc_id")
    op.drop_index("ix_deliveries_upstream_doc_id", table_name="deliveries")
    # what cannot be said in the old states: an upstream delivery becomes a failed pull one (kept: the ledger
    # names it), unless it was delivered
    op.execute("UPDATE deliveries SET mode = 'pull', state = CASE WHEN state = 'delivered' THEN 'delivered' "
               "ELSE 'failed' END, lease_owner = NULL, lease_until = NULL WHERE mode = 'upstream'")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("mode", type_="check")
        batch.drop_constraint("state", type_="check")
        batch.create_check_constraint("mode", _OLD_MODES)
        batch.create_check_constraint("state", _OLD_STATES)
        batch.drop_column("forwarded_at")
        batch.drop_column("upstream_doc_id")
