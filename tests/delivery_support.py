"""Real recipient systems for delivery tests: small HTTP servers (uvicorn in a thread, 127.0.0.1, a free
port) that record every push they get, verify the gateway's signature on it, and answer as scripted.

Each recipient keeps a log of arrivals (delivery id, gateway document id, arrival instant, answer status),
so tests can assert what really came over the wire: duplicates, order, bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import uvicorn
from cryptography import x509
from sqlalchemy import func, select

from gateway.db import Database
from gateway.documents.models import Delivery, Document
from gateway.envelope.push_signature import PushSignatureError, verify_push
from gateway.ledger.models import LedgerEntry
from pg import free_port

#: what the recipient answers to its n-th request (counting from 1): status and extra headers
Script = Callable[[int], tuple[int, dict[str, str]]]


def ok() -> Script:
    return lambda n: (200, {})


def fail_first(times: int, status: int = 503, headers: dict[str, str] | None = None) -> Script:
    return lambda n: (status, dict(headers or {})) if n <= times else (200, {})


def always(status: int, body_headers: dict[str, str] | None = None) -> Script:
    return lambda n: (status, dict(body_headers or {}))


@dataclass(frozen=True)
class Arrival:
    delivery_id: str
    document: str
    kind: str
    sender: str
    recipient: str
    attempt: int
    at: datetime
    answered: int
    verified: bool
    error: str | None
    content_type: str
    envelope: bytes
    #: multipart: Content-ID → SHA-256 of each non-envelope part
    parts: dict[str, str]
    refers_to: str | None


def split_multipart(body: bytes, content_type: str) -> dict[str, tuple[dict[str, str], bytes]]:
    """A minimal multipart/form-data reader for tests: name → (headers, bytes)."""
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    out: dict[str, tuple[dict[str, str], bytes]] = {}
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        name = headers["content-disposition"].split('name="', 1)[1].split('"', 1)[0]
        out[name] = (headers, data[:-2])
    return out


def check_delivery(headers: dict[str, str], body: bytes, certificate: x509.Certificate | None,
                   recipient: str | None) -> tuple[bytes, dict[str, str], bool, str | None]:
    """Envelope bytes, large parts' digests, and whether the gateway's signature verified (with why not)."""
    content_type = headers.get("content-type", "")
    envelope, parts = body, {}
    if content_type.startswith("multipart/form-data"):
        split = split_multipart(body, content_type)
        envelope = split.pop("envelope")[1]
        parts = {name: hashlib.sha256(data).hexdigest() for name, (_, data) in split.items()}
    if certificate is None:
        return envelope, parts, False, "no certificate"
    try:
        verify_push(headers, envelope, certificate, recipient=recipient)
    except PushSignatureError as exc:
        return envelope, parts, False, str(exc)
    return envelope, parts, True, None


class Recipient:
    """One agency's receiving system on 127.0.0.1:<free port>."""

    def __init__(self, code: str, certificate: x509.Certificate | None = None, script: Script | None = None,
                 *, delay: float = 0.0) -> None:
        self.code = code
        self.certificate = certificate
        self.script = script or ok()
        self.delay = delay
        self.port = free_port()
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self._count = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/edxml"

    @property
    def delivery(self) -> dict[str, str]:
        return {"mode": "push", "endpoint": self.url}

    def delivered(self) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if 200 <= a.answered < 300]

    def all(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals)

    async def _app(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                   send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        assert scope["type"] == "http"
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        at = datetime.now(UTC)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        envelope, parts, verified, error = check_delivery(headers, bytes(body), self.certificate, self.code)
        with self._lock:
            self._count += 1
            status, extra = self.script(self._count)
            self.arrivals.append(Arrival(
                delivery_id=headers.get("x-gateway-delivery-id", ""), document=headers.get("x-gateway-document-id", ""),
                kind=headers.get("x-gateway-kind", ""), sender=headers.get("x-gateway-sender", ""),
                recipient=headers.get("x-gateway-recipient", ""), attempt=int(headers.get("x-gateway-attempt", "0")),
                at=at, answered=status, verified=verified, error=error, content_type=headers.get("content-type", ""),
                envelope=envelope, parts=parts, refers_to=headers.get("x-gateway-refers-to"),
            ))
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = b"no such mailbox" if 400 <= status < 500 else b""
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in extra.items()]})
        await send({"type": "http.response.body", "body": answer})

    def start(self) -> Recipient:
        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port, log_config=None, log_level="error",
                                access_log=False, lifespan="off", loop="asyncio", http="h11", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"recipient {self.code}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"recipient server {self.code} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)


async def eventually(predicate: Callable[[], Awaitable[bool]] | Callable[[], bool], within: float = 30.0,
                     interval: float = 0.05, what: str = "condition") -> None:
    """Wait until ``predicate`` holds (bounded); fail the test otherwise."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


async def ledger_types(db: Database, document: str | None = None) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(type, recipient, details) of every ledger entry, optionally about one gateway document."""
    async with db.transaction() as session:
        query = select(LedgerEntry).order_by(LedgerEntry.seq)
        if document is not None:
            query = query.where(LedgerEntry.document == document)
        rows = (await session.execute(query)).scalars().all()
    return [(r.type, r.recipient, json.loads(r.details)) for r in rows]


async def delivery_rows(db: Database, document: str) -> dict[str, Delivery]:
    async with db.transaction() as session:
        rows = (await session.execute(select(Delivery).where(Delivery.document == document))).scalars().all()
    return {r.recipient: r for r in rows}


async def insert_documents(db: Database, sender: str, recipients: Iterable[tuple[str, str]], envelope_sha256: str,
                           size: int, count: int, priority: int = 0) -> list[str]:
    """``count`` accepted documents straight into the tables (bulk tests), each with one pending delivery per
    ``(recipient, mode)``; the bytes must already be in the blob store under ``envelope_sha256``."""
    now = datetime.now(UTC)
    ids: list[str] = []
    recipients = list(recipients)
    async with db.transaction() as session:
        for i in range(count):
            doc = str(uuid.uuid4())
            ids.append(doc)
            session.add(Document(
                id=doc, kind="document", sender=sender, document_id=f"{sender},2026/01/01,{i}/BULK-{doc[:8]}",
                envelope_sha256=envelope_sha256, envelope_size=size, multipart=False, signed=False,
                signer_certificate=None, subject="bulk", type_name="Công văn", code=f"{i}/BULK",
                promulgation_date=None, priority=priority, business_doc_type=0, status_code=None, refers_to=None,
                sent_at=now, ledger_seq=0, ledger_hash="",
            ))
        await session.flush()
        for doc in ids:
            for code, mode in recipients:
                session.add(Delivery(
                    id=str(uuid.uuid4()), document=doc, recipient=code, mode=mode, state="pending", priority=priority,
                    created_at=now, updated_at=now, attempts=0, next_attempt_at=now if mode == "push" else None,
                    lease_owner=None, lease_until=None, last_error=None, received_at=None,
                ))
    return ids


async def count_deliveries(db: Database, state: str) -> int:
    async with db.transaction() as session:
        result = await session.execute(select(func.count()).select_from(Delivery).where(Delivery.state == state))
        return int(result.scalar_one())
