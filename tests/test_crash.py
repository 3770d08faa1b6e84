"""A gateway killed with SIGKILL in the middle of a stream of documents loses nothing it accepted.

A real ``gateway serve`` process (embedded SQLite, its own data directory, the in-process push worker)
takes a stream of 500 signed documents for two push recipients (real HTTP servers on 127.0.0.1) and is
killed with SIGKILL while documents are still coming in and deliveries are in flight. It is started again
on the same data directory; every document that got a receipt (before or after the kill) reaches both
recipients, and the ledger shows exactly one ``delivery.delivered`` per (document, recipient). Deliveries
the dead process held in flight are taken over when their lease expires (at least once: a recipient may
see a delivery twice; the ledger never records it twice).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from delivery_support import Recipient
from gateway.config import Settings
from gateway.signing import load_or_create
from gw import Agency, register
from pg import free_port

DOCUMENTS = 500
KILL_AFTER = 150  # receipts before the kill
SENDERS_IN_FLIGHT = 4


class Gateway:
    """``gateway serve`` as a child process on a data directory that outlives it."""

    def __init__(self, data_dir: Path, key_files: tuple[Path, Path]) -> None:
        self.data_dir = data_dir
        self.key_files = key_files
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = data_dir.parent / "serve.log"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        return {**env, "GATEWAY_DATA_DIR": str(self.data_dir), "GATEWAY_PORT": str(self.port),
                "GATEWAY_SIGNING_KEY_FILE": str(self.key_files[0]), "GATEWAY_SIGNING_CERT_FILE": str(self.key_files[1]),
                "GATEWAY_LOG_LEVEL": "warning", "GATEWAY_WORKER_POLL_SECONDS": "0.05", "GATEWAY_LEASE_SECONDS": "3",
                "GATEWAY_WORKER_CONCURRENCY": "8", "GATEWAY_DELIVERY_TIMEOUT_SECONDS": "5",
                "GATEWAY_DELIVERY_BACKOFF_BASE_SECONDS": "0.1", "GATEWAY_DELIVERY_BACKOFF_CAP_SECONDS": "1"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=self.env,
                                         cwd=self.data_dir.parent, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("gateway serve did not become ready")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def cli(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "gateway", *args], env=self.env, capture_output=True,
                             text=True, timeout=60, check=True)
        return out.stdout

    def query(self, sql: str) -> list[tuple[object, ...]]:
        db = sqlite3.connect(f"file:{self.data_dir / 'gateway.sqlite3'}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()


@pytest.fixture
def recipients(gateway_key_files: tuple[Path, Path]) -> Iterator[list[Recipient]]:
    key_file, cert_file = gateway_key_files
    certificate = load_or_create(Settings(signing_key_file=key_file, signing_cert_file=cert_file)).certificate
    # A few milliseconds per answer keeps deliveries in flight at the moment of the kill.
    servers = [Recipient(code, certificate, delay=0.005).start() for code in ("000.00.00.H41", "000.00.00.H42")]
    yield servers
    for server in servers:
        server.stop()


async def _submit_all(gateway: Gateway, sender: Agency, envelopes: dict[int, bytes], receipts: dict[int, str],
                      kill_after: int | None) -> None:
    """Submit every envelope without a receipt yet, a few at a time; optionally SIGKILL the gateway once
    ``kill_after`` receipts are in. Transport errors (the gateway died) leave the envelope for later."""
    queue = [i for i in sorted(envelopes) if i not in receipts]
    killed = asyncio.Event()

    async def sender_task(client: httpx.AsyncClient) -> None:
        while queue and not killed.is_set():
            i = queue.pop(0)
            try:
                r = await client.post("/v1/envelopes", content=envelopes[i],
                                      headers={**sender.headers, "Content-Type": "application/xml"})
            except httpx.TransportError:
                continue
            assert r.status_code in (200, 201), r.text
            receipts[i] = r.headers["X-Gateway-Document-Id"]
            if kill_after is not None and len(receipts) >= kill_after and not killed.is_set():
                killed.set()
                gateway.kill()

    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        await asyncio.gather(*(sender_task(client) for _ in range(SENDERS_IN_FLIGHT)))


@pytest.mark.slow
async def test_sigkill_mid_stream_loses_no_accepted_document_and_delivers_each_once(
    tmp_path: Path, gateway_key_files: tuple[Path, Path], recipients: list[Recipient]
) -> None:
    started = time.monotonic()
    gateway = Gateway(tmp_path / "var", gateway_key_files)
    gateway.data_dir.mkdir()
    try:
        gateway.start()
        admin = {"Authorization": f"Bearer {gateway.cli('operator', 'create', 'admin', '--role', 'admin').split()[-1]}"}
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            sender = await register(client, admin, "000.00.00.G22", "Văn phòng Chính phủ")
            to = [await register(client, admin, r.code, delivery=r.delivery) for r in recipients]
        envelopes = {i: sender.envelope(*to, code_number=str(1000 + i)) for i in range(DOCUMENTS)}

        receipts: dict[int, str] = {}
        await _submit_all(gateway, sender, envelopes, receipts, kill_after=KILL_AFTER)
        accepted_before_kill = len(receipts)
        arrived_before_kill = sum(len(r.all()) for r in recipients)
        in_flight_at_kill = gateway.query("SELECT count(*) FROM deliveries WHERE state = 'in_flight'")[0][0]
        # Killed mid-stream: some documents accepted and some delivered, but not everything.
        assert KILL_AFTER <= accepted_before_kill < DOCUMENTS
        assert arrived_before_kill > 0

        gateway.start()
        await _submit_all(gateway, sender, envelopes, receipts, kill_after=None)
        assert len(receipts) == DOCUMENTS
        accepted = set(receipts.values())

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            undelivered = gateway.query(
                "SELECT count(*) FROM deliveries d JOIN documents doc ON doc.id = d.document "
                "WHERE doc.kind = 'document' AND d.state != 'delivered'"
            )[0][0]
            if undelivered == 0:
                break
            await asyncio.sleep(0.2)
        assert undelivered == 0, gateway.log.read_text(errors="replace")[-3000:]

        # Every accepted document reached both recipients' systems.
        for server in recipients:
            got = {a.document for a in server.delivered()}
            assert accepted <= got, f"{len(accepted - got)} accepted documents never reached {server.code}"
            assert all(a.verified for a in server.all())
        # The ledger: exactly one delivered per (document, recipient), for every accepted document.
        delivered = Counter(gateway.query(
            "SELECT document, recipient FROM ledger_entries WHERE type = 'delivery.delivered' "
            "AND document IN (SELECT id FROM documents WHERE kind = 'document')"
        ))
        assert set(delivered.values()) == {1}
        assert {doc for doc, _ in delivered} == accepted
        assert len(delivered) == 2 * DOCUMENTS
        reclaimed = gateway.query(
            "SELECT count(*) FROM ledger_entries WHERE type = 'delivery.in_flight' AND details LIKE '%reclaimed_from%'"
        )[0][0]
        duplicates = sum(len(r.all()) - len({a.delivery_id for a in r.all()}) for r in recipients)
        print(f"\ncrash test: {accepted_before_kill} accepted and {arrived_before_kill} pushes before SIGKILL, "
              f"{in_flight_at_kill} in flight at the kill, {reclaimed} taken over after restart, "
              f"{duplicates} duplicate pushes seen by recipients, {time.monotonic() - started:.1f}s")
    finally:
        gateway.stop()
