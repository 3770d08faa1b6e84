"""What one accepted envelope costs the database, counted statement by statement (issue 8's profile: the
database layer, not the signature, is where intake's time goes). A guard against the hot path growing
back: no pool pre-ping, no transaction around the reads before the write, one write transaction.

Every statement SQLAlchemy hands the driver is counted (on SQLite the ``BEGIN`` of each transaction
included); on PostgreSQL also the BEGIN and COMMIT asyncpg sends itself (its query logger sees them).
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event

from gw import register, submit

#: auth 1; idempotency, sender and its certificates in one (issue 17); recipients, DocumentId 2; the write
#: transaction: BEGIN, lock (PostgreSQL), head, document, attachments, deliveries, ledger entry, COMMIT (the sent
#: instant is known before the document is written: no UPDATE after, issue 17)
POSTGRES_STATEMENTS = 12


async def test_an_accepted_envelope_takes_one_transaction_and_few_statements(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    h47 = await register(client, admin_headers, "000.00.00.H47", "UBND tỉnh Quảng Ninh",
                         delivery={"mode": "push", "endpoint": "http://127.0.0.1:9/edxml"})
    assert (await submit(client, g22, g22.envelope(h41, h47))).status_code == 201  # warm: caches, genesis

    sent: list[str] = []
    engine = app.state.db.engine.sync_engine
    postgres = app.state.db.dialect == "postgresql"

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split())[:60])

    if postgres:
        # asyncpg sends BEGIN and COMMIT itself; its query logger sees them (and not the prepared
        # statements, which the hook above counts).
        loggers: list[Any] = []

        def log(record: Any) -> None:
            query = " ".join(record.query.split()).rstrip(";")
            if query.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
                sent.append(query)

        @event.listens_for(engine, "checkout")
        def _attach(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            raw = dbapi_connection.driver_connection
            if raw not in loggers:
                raw.add_query_logger(log)
                loggers.append(raw)

    r = await submit(client, g22, g22.envelope(h41, h47, code_number="2"))
    assert r.status_code == 201, r.text

    begins = [s for s in sent if s.upper().startswith("BEGIN")]
    writes = [s for s in sent if s.split(" ")[0].upper() in {"INSERT", "UPDATE", "DELETE"}]
    if postgres:
        assert len(sent) <= POSTGRES_STATEMENTS, "\n".join(sent)
        assert len(begins) == 1, sent  # the reads before the write open no transaction
        assert [s for s in sent if s.upper().startswith("COMMIT")] == ["COMMIT"]
        assert not any(s.strip() in {";", "SELECT 1"} for s in sent), sent  # no pre-ping
    else:
        # SQLite: one writer transaction (BEGIN IMMEDIATE); the reads take deferred BEGINs, no writer lock.
        assert [b for b in begins if "IMMEDIATE" in b.upper()] == ["BEGIN IMMEDIATE"], sent
        assert len(sent) <= POSTGRES_STATEMENTS + 3, "\n".join(sent)
    assert len(writes) == 4, writes  # document, attachments, deliveries, ledger entry (nothing updated after)
