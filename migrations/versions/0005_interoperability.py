"""Interoperability: agency aliases, recorded deviations, follow-up messages, the gateway's own 01.

``agency_aliases``: other codes an agency is known by in the wild (old-format codes such as ``28.22.H17``,
a SaaS tenant id, …). An alias names exactly one agency and is never an agency's code or another's
``alt_code`` (the register service checks that; the primary key makes two equal aliases impossible).

``documents.deviations``: the tolerated quirks of the accepted envelope (``[{"code", "where"}]`` as JSON
text), shown in the document view and counted in the monthly report.

``documents.automatic``: the status 01 the gateway itself wrote when a document arrived. A recipient's own
01 is a different statement and may follow it, so the one-status-per-(agency, document, code) rule of 0004
now holds separately for the gateway's 01 and for the agency's own statuses.

``uq_documents_sender_document_id`` now holds for new documents (``BussinessDocType`` 0) only: a recall,
update or replacement repeats its original's DocumentId as a new message that refers to it (Điều 12.8: the
original is never altered).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_NEW_DOCUMENT = "kind = 'document' AND business_doc_type = 0"
_OLD_STATUS = "kind = 'status' AND status_code <> '05'"
_AGENCY_STATUS = "kind = 'status' AND status_code <> '05' AND automatic = false"
_GATEWAY_STATUS = "kind = 'status' AND automatic = true"


def upgrade() -> None:
    op.create_table(
        "agency_aliases",
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("agency_code", sa.String(13), sa.ForeignKey("agencies.code"), nullable=False, index=True),
    )
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("deviations", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("automatic", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.drop_index("uq_documents_sender_document_id", table_name="documents")
    op.create_index(
        "uq_documents_sender_document_id", "documents", ["sender", "document_id"], unique=True,
        sqlite_where=sa.text(_NEW_DOCUMENT), postgresql_where=sa.text(_NEW_DOCUMENT),
    )
    op.drop_index("uq_documents_status", table_name="documents")
    op.create_index(
        "uq_documents_status", "documents", ["sender", "refers_to", "status_code"], unique=True,
        sqlite_where=sa.text(_AGENCY_STATUS), postgresql_where=sa.text(_AGENCY_STATUS),
    )
    op.create_index(
        "uq_documents_gateway_status", "documents", ["sender", "refers_to", "status_code"], unique=True,
        sqlite_where=sa.text(_GATEWAY_STATUS), postgresql_where=sa.text(_GATEWAY_STATUS),
    )


def downgrade() -> None:
    op.drop_index("uq_documents_gateway_status", table_name="documents")
    op.drop_index("uq_documents_status", table_name="documents")
    op.create_index(
        "uq_documents_status", "documents", ["sender", "refers_to", "status_code"], unique=True,
        sqlite_where=sa.text(_OLD_STATUS), postgresql_where=sa.text(_OLD_STATUS),
    )
    op.drop_index("uq_documents_sender_document_id", table_name="documents")
    op.create_index(
        "uq_documents_sender_document_id", "documents", ["sender", "document_id"], unique=True,
        sqlite_where=sa.text("kind = 'document'"), postgresql_where=sa.text("kind = 'document'"),
    )
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("automatic")
        batch.drop_column("deviations")
    op.drop_table("agency_aliases")
