"""VXP systems: the credentials of QLVB installations that speak the national axis protocol.

``vxp_systems``: one row per system (``system_id``, shown to the installation with its secret once). A system
serves its agency and, with ``serves = 'subtree'``, every agency registered under it (the register's
``parent_code`` chain). ``secret_ciphertext`` is the shared secret sealed with AES-256-GCM under a key the
gateway keeps outside the database (``<data_dir>/keys/vxp-secrets.key``), bound to ``system_id``: a copy of
the table alone opens nothing. Revoked systems stay on record (``revoked_at``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.base import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vxp_systems",
        sa.Column("system_id", sa.String(64), primary_key=True),
        sa.Column("agency_code", sa.String(13), sa.ForeignKey("agencies.code"), nullable=False, index=True),
        sa.Column("serves", sa.String(8), nullable=False),
        sa.Column("secret_ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("serves IN ('subtree', 'agency')", name="serves"),
    )


def downgrade() -> None:
    op.drop_table("vxp_systems")
