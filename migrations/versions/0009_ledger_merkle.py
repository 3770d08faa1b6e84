"""The ledger's Merkle tree (issue 18): the perfect-subtree nodes over the entries, and each checkpoint's root.

``ledger_merkle_nodes``: the hash (64 lowercase hex) of every complete perfect subtree of the RFC 9162 tree whose
leaf ``i`` is the ledger entry ``seq = i`` (leaf data: the entry's chain hash, 32 bytes), addressed
``(level, idx)`` = the 2**level leaves from ``idx * 2**level`` (gateway.ledger.merkle). Append-only like the
ledger (triggers on both databases): a node, once written, is a fact about the entries below it.

``ledger_checkpoints.root_hash``: the tree's root at the checkpoint's size; ``ledger_checkpoints.note``: the same
checkpoint as a C2SP signed note (c2sp.org/tlog-checkpoint: origin, size, base64 root; signed by the gateway key,
gateway.ledger.note). Both null for checkpoints signed before this migration.

``ledger_checkpoint_timestamps``: the RFC 3161 token a timestamping authority gave over SHA-256 of a checkpoint's
note (``GATEWAY_TSA_URL``), one per checkpoint, append-only like the checkpoints.

``ledger_witnesses``: the parties whose cosignatures of checkpoints the gateway takes (a C2SP verifier key
each, registered by an operator); ``ledger_cosignatures``: the cosignature lines they gave, verified before they
were stored, append-only, served with the checkpoint note.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.base import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PG_REFUSE_FUNCTION = """
CREATE FUNCTION ledger_merkle_nodes_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_merkle_nodes is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def upgrade() -> None:
    op.create_table(
        "ledger_merkle_nodes",
        sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("level >= 0 AND level < 64 AND idx >= 0", name="position"),
    )
    op.add_column("ledger_checkpoints", sa.Column("root_hash", sa.String(64), nullable=True))
    op.add_column("ledger_checkpoints", sa.Column("note", sa.Text(), nullable=True))
    op.create_table(
        "ledger_witnesses",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("verifier_key", sa.Text(), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "ledger_cosignatures",
        sa.Column("size", sa.BigInteger(), sa.ForeignKey("ledger_checkpoints.size"), primary_key=True,
                  autoincrement=False),
        sa.Column("witness", sa.String(200), sa.ForeignKey("ledger_witnesses.name"), primary_key=True),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "ledger_checkpoint_timestamps",
        sa.Column("size", sa.BigInteger(), sa.ForeignKey("ledger_checkpoints.size"), primary_key=True,
                  autoincrement=False),
        sa.Column("token", sa.Text(), nullable=False),  # base64 DER TimeStampToken
        sa.Column("gen_time", UTCDateTime(), nullable=False),
        sa.Column("tsa_certificate_sha256", sa.String(64), nullable=False),
        sa.Column("stamped_at", UTCDateTime(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_REFUSE_FUNCTION)
        for table in ("ledger_checkpoint_timestamps", "ledger_cosignatures"):
            op.execute(
                f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_merkle_nodes_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_merkle_nodes_refuse_change()"
            )
        op.execute(
            "CREATE TRIGGER ledger_merkle_nodes_no_update_delete BEFORE UPDATE OR DELETE ON ledger_merkle_nodes "
            "FOR EACH ROW EXECUTE FUNCTION ledger_merkle_nodes_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER ledger_merkle_nodes_no_truncate BEFORE TRUNCATE ON ledger_merkle_nodes "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_merkle_nodes_refuse_change()"
        )
    else:
        op.execute(
            "CREATE TRIGGER ledger_merkle_nodes_no_update BEFORE UPDATE ON ledger_merkle_nodes "
            "BEGIN SELECT RAISE(ABORT, 'ledger_merkle_nodes is append-only: UPDATE refused'); END"
        )
        op.execute(
            "CREATE TRIGGER ledger_merkle_nodes_no_delete BEFORE DELETE ON ledger_merkle_nodes "
            "BEGIN SELECT RAISE(ABORT, 'ledger_merkle_nodes is append-only: DELETE refused'); END"
        )
        for table in ("ledger_checkpoint_timestamps", "ledger_cosignatures"):
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} refused'); END"
                )


def downgrade() -> None:
    op.drop_table("ledger_checkpoint_timestamps")  # its triggers go with it
    op.drop_table("ledger_cosignatures")
    op.drop_table("ledger_witnesses")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_merkle_nodes_no_truncate ON ledger_merkle_nodes")
        op.execute("DROP TRIGGER IF EXISTS ledger_merkle_nodes_no_update_delete ON ledger_merkle_nodes")
        op.execute("DROP FUNCTION IF EXISTS ledger_merkle_nodes_refuse_change()")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_merkle_nodes_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_merkle_nodes_no_delete")
    op.drop_table("ledger_merkle_nodes")
    # Not Alembic's batch mode on SQLite: it would rebuild ledger_checkpoints without its append-only triggers.
    op.execute("ALTER TABLE ledger_checkpoints DROP COLUMN note")
    op.execute("ALTER TABLE ledger_checkpoints DROP COLUMN root_hash")
