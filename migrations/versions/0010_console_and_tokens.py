"""The operator console and the operations an operator expects (issue 16).

``api_tokens.expires_at``: an optional expiry on every token (agency or operator); a token past it is refused like
a revoked one. ``operators.revoked_at``: an operator revoked by an administrator; every token of theirs and every
console session is refused from then on (the row stays: the ledger names operators).

``console_sessions``: a web-console sign-in, made by exchanging an operator token at ``/console/login``. ``id`` is
SHA-256 (hex) of the random session secret the browser holds in its cookie (the secret itself is never stored);
``csrf_token`` is the per-session token every console form carries; ``last_seen_at`` drives the idle expiry,
``expires_at`` is the absolute one; ``ended_at`` is set by sign-out (or when the operator is revoked).

Indexes for the search APIs: deliveries by state and time (``GET /v1/deliveries``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.base import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("expires_at", UTCDateTime(), nullable=True))
    op.add_column("operators", sa.Column("revoked_at", UTCDateTime(), nullable=True))
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("operator_id", sa.String(36), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("token_id", sa.String(36), sa.ForeignKey("api_tokens.id"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_console_sessions_operator", "console_sessions", ["operator_id"])
    op.create_index("ix_deliveries_state_updated", "deliveries", ["state", "updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_state_updated", table_name="deliveries")
    op.drop_index("ix_console_sessions_operator", table_name="console_sessions")
    op.drop_table("console_sessions")
    with op.batch_alter_table("operators") as batch:
        batch.drop_column("revoked_at")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
