"""Overload and database trouble get a fast 503 problem with Retry-After, never a 500 after a long wait.

- Past ``max_concurrent_requests`` a request waits at most ``admission_wait_seconds``, then is answered
  ``overloaded`` before anything of it is read (no ledger entry: nothing was looked at).
- No pool connection within ``database_pool_timeout_seconds``: ``database-unavailable``.
- The database connection lost under a request (PostgreSQL restarted or the backend killed):
  ``database-unavailable`` once, and the next request works on a fresh connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.admission import Admission
from gateway.app import create_app
from gateway.auth.service import AuthService
from gateway.config import Settings
from gateway.ledger.models import LedgerEntry
from pg import PostgresServer


async def _ledger_size(app: FastAPI) -> int:
    async with app.state.db.transaction() as session:
        return int((await session.execute(select(func.count()).select_from(LedgerEntry))).scalar_one())


@pytest.fixture
async def tight_app(settings: Settings) -> AsyncIterator[FastAPI]:
    tight = settings.model_copy(update={
        "max_concurrent_requests": 1, "admission_wait_seconds": 0.2,
        "database_pool_size": 1, "database_pool_timeout_seconds": 0.3,
    })
    application = create_app(tight)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def tight_client(tight_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=tight_app), base_url="http://gateway.test") as c:
        yield c


async def test_admission_queues_in_order_then_gives_up() -> None:
    admission = Admission(limit=1, wait=0.05)
    assert await admission.enter()
    started = time.perf_counter()
    assert not await admission.enter()
    assert time.perf_counter() - started < 1.0
    waiter = asyncio.create_task(Admission.enter(admission))
    await asyncio.sleep(0)
    admission.leave()
    assert await waiter  # the slot went to the one waiting
    assert admission.in_flight == 1
    admission.leave()
    assert admission.in_flight == 0
    with pytest.raises(ValueError, match="at least 1"):
        Admission(limit=0, wait=1)


async def test_past_the_admission_limit_the_answer_is_a_fast_503(
    tight_app: FastAPI, tight_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    admission: Admission = tight_app.state.admission
    assert (await tight_client.get("/v1/agencies", headers=admin_headers)).status_code == 200
    before = await _ledger_size(tight_app)
    assert await admission.enter()  # another request holds the only slot
    try:
        started = time.perf_counter()
        r = await tight_client.post("/v1/envelopes", content=b"<edXMLEnvelope/>",
                                    headers={**admin_headers, "Content-Type": "application/xml"})
        waited = time.perf_counter() - started
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["retry-after"] == "1"
        assert r.json()["type"] == "urn:gateway:problem:overloaded"
        assert 0.15 <= waited < 3.0
        # The national axis face sheds load too, in the JSON its SDK reads.
        vxp = await tight_client.post("/vxp/sendEdoc", content=b"<edXML/>\r\n")
        assert (vxp.status_code, vxp.headers["content-type"]) == (503, "application/json")
        assert (vxp.json()["status"], vxp.json()["ErrorCode"], vxp.json()["DocId"]) == ("FAIL", "overloaded", "")
        # Operators still see the gateway: health, readiness and metrics are never queued.
        assert (await tight_client.get("/healthz")).status_code == 200
        assert (await tight_client.get("/readyz")).status_code == 200
        metrics = (await tight_client.get("/metrics")).text
        assert "gateway_requests_shed_total" in metrics
    finally:
        admission.leave()
    assert (await tight_client.get("/v1/agencies", headers=admin_headers)).status_code == 200
    assert await _ledger_size(tight_app) == before  # the shed request left nothing behind


async def test_no_database_connection_in_time_is_a_503_not_a_500(
    tight_app: FastAPI, tight_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    engine = tight_app.state.db.engine
    held: list[AsyncConnection] = []
    try:
        for _ in range(1):  # pool_size 1 and no overflow (an eighth of it, rounded down): every connection is taken
            held.append(await engine.connect())
        started = time.perf_counter()
        r = await tight_client.get("/v1/agencies", headers=admin_headers)
        assert time.perf_counter() - started < 5.0
        assert r.status_code == 503, r.text
        assert r.json()["type"] == "urn:gateway:problem:database-unavailable"
        assert r.headers["retry-after"] == "2"
    finally:
        for conn in held:
            await conn.close()
    assert (await tight_client.get("/v1/agencies", headers=admin_headers)).status_code == 200


async def test_a_lost_database_connection_is_a_503_and_the_next_request_works(
    pg_url: str, postgres: PostgresServer, tmp_path: Path, gateway_key_files: tuple[Path, Path]
) -> None:
    # PostgreSQL only: an embedded SQLite database has no connection to lose.
    key_file, cert_file = gateway_key_files
    settings = Settings(data_dir=tmp_path / "var", database_url=pg_url, signing_key_file=key_file,
                        signing_cert_file=cert_file, run_workers=False, log_level="warning")
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        async with app.state.db.transaction() as session:
            _, _, token = await AuthService(session).create_operator("admin", "admin", actor="console:test")
        headers = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/v1/agencies", headers=headers)).status_code == 200
        name = app.state.db.engine.url.database
        postgres.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")  # noqa: S608
        r = await client.get("/v1/agencies", headers=headers)
        assert r.status_code == 503, r.text
        assert r.json()["type"] == "urn:gateway:problem:database-unavailable"
        assert r.headers["retry-after"] == "2"
        assert (await client.get("/v1/agencies", headers=headers)).status_code == 200
