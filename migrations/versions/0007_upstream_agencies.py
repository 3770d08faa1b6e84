"""Upstream agencies: agencies imported from an upstream axis's register (issue 15).

``agencies.source``: ``local`` (registered by an operator, the only kind before) or ``upstream`` (imported by
``gateway upstream agencies sync`` from the upstream's getAgenciesList / getAgenciesListQD20 /
getSynchronizeUnit; the sync owns these rows and never touches a local one). ``agencies.synced_at``: the
instant of the last sync that found the agency listed upstream (null for local agencies).

``agencies.delivery_mode`` gains ``upstream`` (reached through the upstream axis, no endpoint), which only an
upstream agency has and an upstream agency always has (``source_matches_mode``): an operator cannot register
or switch an agency into it, and switching an upstream agency to push or pull makes it local.

SQLite cannot change a CHECK constraint in place, so there the table is rebuilt. Not with Alembic's batch
mode: it drops the old table after copying into the new one and renames the new one, and with foreign keys
enforced (gateway.db.engine turns them on, and a PRAGMA cannot turn them off inside the migration's
transaction) dropping a table whose rows other tables reference fails. Instead, with the foreign keys
deferred to the commit: copy the rows aside, drop the table, create it anew under the same name, and insert
the rows back; by the commit every certificate, token, alias, document, delivery and VXP system finds its
agency again. PostgreSQL changes the constraints in place.

Downgrade: upstream agencies become suspended pull agencies (kept, since rows may reference them; suspended,
since nothing may be delivered to them by pull that nobody would fetch).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.base import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OLD_MODES = "delivery_mode IN ('push', 'pull')"
_OLD_ENDPOINT = "(delivery_mode = 'push' AND endpoint IS NOT NULL) OR (delivery_mode = 'pull' AND endpoint IS NULL)"
_NEW_MODES = "delivery_mode IN ('push', 'pull', 'upstream')"
_NEW_ENDPOINT = ("(delivery_mode = 'push' AND endpoint IS NOT NULL) OR "
                 "(delivery_mode IN ('pull', 'upstream') AND endpoint IS NULL)")
_SOURCE = ("(source = 'local' AND delivery_mode IN ('push', 'pull')) OR "
           "(source = 'upstream' AND delivery_mode = 'upstream')")

# The SQLite rebuild's statements, whole (the columns in 0001's order, then 0007's).
_SET_ASIDE = "CREATE TABLE _agencies_0007 AS SELECT * FROM agencies"
_PUT_BACK_UP = (
    "INSERT INTO agencies (code, alt_code, name, parent_code, delivery_mode, endpoint, signature_policy, active, "
    "created_at, updated_at, source, synced_at) "
    "SELECT code, alt_code, name, parent_code, delivery_mode, endpoint, signature_policy, active, created_at, "
    "updated_at, 'local', NULL FROM _agencies_0007"
)
_PUT_BACK_DOWN = (
    "INSERT INTO agencies (code, alt_code, name, parent_code, delivery_mode, endpoint, signature_policy, active, "
    "created_at, updated_at) "
    "SELECT code, alt_code, name, parent_code, "
    "CASE WHEN delivery_mode = 'upstream' THEN 'pull' ELSE delivery_mode END, endpoint, signature_policy, "
    "CASE WHEN delivery_mode = 'upstream' THEN 0 ELSE active END, created_at, updated_at FROM _agencies_0007"
)


def _agencies_table(*, upstream: bool) -> None:
    """``agencies`` as 0001 made it, with the columns and constraints of 0007 when ``upstream``."""
    columns: list[sa.Column[object]] = [
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
    ]
    constraints = [
        sa.CheckConstraint(_NEW_MODES if upstream else _OLD_MODES, name="delivery_mode"),
        sa.CheckConstraint("signature_policy IN ('required', 'channel')", name="signature_policy"),
        sa.CheckConstraint(_NEW_ENDPOINT if upstream else _OLD_ENDPOINT, name="endpoint_matches_mode"),
    ]
    if upstream:
        columns += [
            sa.Column("source", sa.String(8), nullable=False, server_default="local"),
            sa.Column("synced_at", UTCDateTime(), nullable=True),
        ]
        constraints.append(sa.CheckConstraint(_SOURCE, name="source_matches_mode"))
    op.create_table("agencies", *columns, *constraints)


def _rebuild_sqlite(*, upstream: bool, put_back: str) -> None:
    """Rebuild ``agencies`` on SQLite (see the module docstring); ``put_back`` copies the rows set aside into
    the new table."""
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute(_SET_ASIDE)
    op.drop_table("agencies")
    _agencies_table(upstream=upstream)
    op.execute(put_back)
    op.drop_table("_agencies_0007")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(upstream=True, put_back=_PUT_BACK_UP)
        return
    op.add_column("agencies", sa.Column("source", sa.String(8), nullable=False, server_default="local"))
    op.add_column("agencies", sa.Column("synced_at", UTCDateTime(), nullable=True))
    op.drop_constraint("endpoint_matches_mode", "agencies", type_="check")
    op.drop_constraint("delivery_mode", "agencies", type_="check")
    op.create_check_constraint("delivery_mode", "agencies", _NEW_MODES)
    op.create_check_constraint("endpoint_matches_mode", "agencies", _NEW_ENDPOINT)
    op.create_check_constraint("source_matches_mode", "agencies", _SOURCE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(upstream=False, put_back=_PUT_BACK_DOWN)
        return
    op.drop_constraint("source_matches_mode", "agencies", type_="check")
    op.drop_constraint("endpoint_matches_mode", "agencies", type_="check")
    op.drop_constraint("delivery_mode", "agencies", type_="check")
    op.execute("UPDATE agencies SET delivery_mode = 'pull', active = false WHERE delivery_mode = 'upstream'")
    op.create_check_constraint("delivery_mode", "agencies", _OLD_MODES)
    op.create_check_constraint("endpoint_matches_mode", "agencies", _OLD_ENDPOINT)
    op.drop_column("agencies", "synced_at")
    op.drop_column("agencies", "source")
