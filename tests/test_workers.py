"""Two ``gateway worker`` processes on one PostgreSQL deliver 1,000 documents to two push recipients, and
no (document, recipient) is ever claimed by both: each recipient's log holds every delivery exactly once,
and the ledger shows for each delivery exactly one claim and one ``delivered``, by one worker."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from delivery_support import Recipient, count_deliveries, insert_documents
from gateway.app import create_app
from gateway.auth.service import AuthService
from gateway.config import Settings
from gateway.documents.models import Delivery
from gateway.ledger.models import LedgerEntry
from gw import register

DOCUMENTS = 1000


@pytest.fixture
async def pg_app(pg_url: str, tmp_path: Path, gateway_key_files: tuple[Path, Path]) -> AsyncIterator[FastAPI]:
    key_file, cert_file = gateway_key_files
    settings = Settings(data_dir=tmp_path / "var", database_url=pg_url, signing_key_file=key_file,
                        signing_cert_file=cert_file, run_workers=False, log_level="warning")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def recipients(pg_app: FastAPI) -> Iterator[list[Recipient]]:
    certificate = pg_app.state.gateway_key.certificate
    servers = [Recipient(code, certificate).start() for code in ("000.00.00.H41", "000.00.00.H42")]
    yield servers
    for server in servers:
        server.stop()


def _worker(app: FastAPI, log: Path) -> subprocess.Popen[bytes]:
    settings: Settings = app.state.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({
        "GATEWAY_DATA_DIR": str(settings.data_dir), "GATEWAY_DATABASE_URL": settings.effective_database_url,
        "GATEWAY_SIGNING_KEY_FILE": str(settings.signing_key_file),
        "GATEWAY_SIGNING_CERT_FILE": str(settings.signing_cert_file),
        "GATEWAY_LOG_LEVEL": "warning", "GATEWAY_WORKER_POLL_SECONDS": "0.05", "GATEWAY_LEASE_SECONDS": "30",
    })
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "gateway", "worker", "--concurrency", "8"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
async def test_two_worker_processes_share_one_postgresql_without_double_claims(
    pg_app: FastAPI, recipients: list[Recipient], tmp_path: Path
) -> None:
    started = time.monotonic()
    db = pg_app.state.db
    transport = httpx.ASGITransport(app=pg_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        async with db.transaction() as session:
            _, _, token = await AuthService(session).create_operator("admin", "admin", actor="console:test")
        admin = {"Authorization": f"Bearer {token}"}
        sender = await register(client, admin, "000.00.00.G22")
        to = [await register(client, admin, server.code, delivery=server.delivery) for server in recipients]
    envelope = sender.envelope(*to)
    digest = pg_app.state.blobs.put(envelope)
    await insert_documents(db, sender.code, [(r.code, "push") for r in recipients], digest, len(envelope), DOCUMENTS)
    assert await count_deliveries(db, "pending") == 2 * DOCUMENTS

    logs = [tmp_path / f"worker{i}.log" for i in (1, 2)]
    workers = [_worker(pg_app, log) for log in logs]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            for w, log in zip(workers, logs, strict=True):
                assert w.poll() is None, log.read_text(errors="replace")[-3000:]
            async with db.transaction() as session:
                states = Counter((await session.execute(select(Delivery.state).where(
                    Delivery.recipient.in_([r.code for r in recipients])))).scalars())
            if states.get("delivered") == 2 * DOCUMENTS:
                break
            await asyncio.sleep(0.25)
        assert states == {"delivered": 2 * DOCUMENTS}, states
        elapsed = time.monotonic() - started
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=60) for w in workers]
    assert codes == [0, 0], [log.read_text(errors="replace")[-2000:] for log in logs]

    # The recipients' logs: every delivery arrived exactly once (a double claim would show as a duplicate).
    async with db.transaction() as session:
        expected = {(d.recipient, d.id) for d in (await session.execute(select(Delivery).where(
            Delivery.recipient.in_([r.code for r in recipients])))).scalars()}
    for server in recipients:
        seen = Counter(a.delivery_id for a in server.all())
        assert set(seen.values()) == {1}, f"{server.code} got a delivery twice"
        assert {(server.code, d) for d in seen} == {e for e in expected if e[0] == server.code}
        # A retry after a failed first attempt (possible on a loaded machine) is at-least-once delivery, not a
        # double claim; what must never happen is a second arrival of the same delivery (checked above).
        odd = [(a.delivery_id, a.verified, a.answered) for a in server.all() if not (a.verified and a.answered == 200)]
        assert odd == [], f"{server.code}: unverified or failed arrivals {odd[:5]}"

    # The ledger, in sequence order: per delivery, claims never overlap (every claim after the first follows
    # the previous attempt's outcome), exactly one delivered, and it is by the worker holding the last claim.
    async with db.transaction() as session:
        entries = (await session.execute(select(LedgerEntry).where(
            LedgerEntry.type.in_(("delivery.in_flight", "delivery.delivered", "delivery.retry_scheduled")),
            LedgerEntry.recipient.in_([r.code for r in recipients])).order_by(LedgerEntry.seq))).scalars().all()
    by_delivery: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for e in entries:
        details = json.loads(e.details)
        by_delivery[details["delivery"]].append((e.type, details.get("worker", "")))
    assert len(by_delivery) == 2 * DOCUMENTS
    for events in by_delivery.values():
        kinds = [t for t, _ in events]
        assert kinds[-1] == "delivery.delivered"
        assert kinds.count("delivery.delivered") == 1
        assert kinds[0] == "delivery.in_flight"
        for before, after in itertools.pairwise(kinds):
            assert not (before == "delivery.in_flight" and after == "delivery.in_flight"), "overlapping claims"
        last_claim = [w for t, w in events if t == "delivery.in_flight"][-1]
        assert events[-1][1] in ("", last_claim)
    shares = Counter(events[0][1] for events in by_delivery.values())
    assert len(shares) == 2, "both worker processes took part"
    print(f"\ntwo workers: {2 * DOCUMENTS} deliveries in {elapsed:.1f}s, split {sorted(shares.values())}")


def test_a_worker_refuses_to_start_without_the_gateway_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATA_DIR"] = str(tmp_path / "var")
    out = subprocess.run([sys.executable, "-m", "gateway", "worker"], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 1
    assert "no gateway key" in out.stderr
    assert not (tmp_path / "var" / "keys").exists(), "a worker never creates a key of its own"
